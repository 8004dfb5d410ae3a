"""A real ``salmonn-agent serve`` app on 127.0.0.1 (uvicorn in a thread) over the tiny model."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import soundfile as sf


class RunningServer:
    """A uvicorn server in a background thread; ``url`` is its base URL (``.../v1``)."""

    def __init__(self, app) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not (self.server.started and self.server.servers):
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/v1"

    def wait_ready(self, timeout: float = 60) -> None:
        from devkit.serving import wait_until_healthy

        wait_until_healthy(self.base, timeout, poll_s=0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def start_server(tiny_model) -> Iterator[Callable[..., RunningServer]]:
    """Start servers on the tiny model with the given settings; all are stopped after the test."""
    from salmonn_agent.chat_model import ChatSALMONN
    from salmonn_agent.server.app import create_app
    from salmonn_agent.server.settings import ServerSettings

    running: list[RunningServer] = []

    def start(load: Callable[[], ChatSALMONN] | None = None, **settings) -> RunningServer:
        def default_load() -> ChatSALMONN:
            return ChatSALMONN(client=tiny_model, model="tiny-salmonn", local_audio=False)

        server = RunningServer(create_app(ServerSettings(**settings), load or default_load))
        running.append(server)
        server.wait_ready()
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture(scope="session")
def wav_bytes() -> bytes:
    """A 1.5 s WAV clip (a tone with noise), as bytes."""
    rng = np.random.default_rng(0)
    t = np.arange(24_000) / 16_000
    clip = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    out = io.BytesIO()
    sf.write(out, clip, 16_000, format="WAV")
    return out.getvalue()


@pytest.fixture
def run_app() -> Iterator[Callable[..., RunningServer]]:
    """Run any ASGI app as a test server (waits until healthy); all are stopped after the test."""
    running: list[RunningServer] = []

    def run(app) -> RunningServer:
        server = RunningServer(app)
        running.append(server)
        server.wait_ready()
        return server

    yield run
    for server in running:
        server.stop()

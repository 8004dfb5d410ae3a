"""Scale-out: the server app as two Ray Serve replicas on a local Ray instance."""

from __future__ import annotations

import base64
import socket
import threading
import time

import httpx
import pytest

pytestmark = pytest.mark.slow

serve = pytest.importorskip("ray.serve", reason='Ray Serve is not installed (pip install -e ".[ray]")')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _question(wav: bytes) -> dict:
    return {"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav).decode(), "format": "wav"}},
        {"type": "text", "text": "What do you hear?"}]}], "max_tokens": 6, "temperature": 0}


def test_two_replicas_share_requests_and_answer_like_one_server(tiny_model_dir, tiny_model, wav_bytes):
    import ray

    from salmonn_agent.chat_model import ChatSALMONN
    from salmonn_agent.server.ray_serve import build_app

    expected = ChatSALMONN(client=tiny_model, max_tokens=6, temperature=0).invoke(_question(wav_bytes)["messages"])
    port = _free_port()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        app = build_app({"model": str(tiny_model_dir), "replicas": "2", "num_cpus": "0.5", "device": "cpu",
                         "dtype": "float32"})
        serve.run(app, name="salmonn", route_prefix="/", blocking=False)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        ready: set[str] = set()
        while len(ready) < 2:  # both replicas loaded their model
            assert time.monotonic() < deadline, "the replicas did not become ready"
            try:
                response = httpx.get(f"{base}/health", timeout=10)
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            if response.status_code == 200:
                ready.add(response.headers["x-salmonn-replica"])
            else:
                time.sleep(0.2)
        results: list[httpx.Response] = []

        def ask() -> None:
            results.append(httpx.post(f"{base}/v1/chat/completions", json=_question(wav_bytes), timeout=120))

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [r.status_code for r in results] == [200] * 8
        assert {r.json()["choices"][0]["message"]["content"] for r in results} == {expected.content}
        assert len({r.headers["x-salmonn-replica"] for r in results}) == 2  # spread over both replicas
    finally:
        serve.shutdown()
        ray.shutdown()

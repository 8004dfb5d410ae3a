"""``WS /v1/live`` without a browser: the hello, the limits, turns, clips, and leaving mid-answer."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from devkit import scenes as synth
from devkit.scenes import SceneBuilder
from salmonn_agent.audio import load_audio
from salmonn_agent.server.live import WATCH_MAX_TOKENS, LiveOptions
from salmonn_agent.stream.config import SegmenterConfig

websockets_sync = pytest.importorskip("websockets.sync.client")
pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager:DeprecationWarning")

SR = 16_000
SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "stream"


class SlowBrain(BaseChatModel):
    """Streams ``words`` one every ``delay_s``, then asks for ``call``; logs how each answer ended."""

    words: list[str] = Field(default_factory=lambda: ["Noted", " it", "."])
    delay_s: float = 0.05
    call: dict[str, Any] | None = Field(default_factory=lambda: {"name": "add_note", "args": {"text": "buy milk"}})
    log: list[str] = Field(default_factory=list)
    heard: str | None = None
    """What the brain reports hearing ahead of its answer (as ChatSALMONN with salmonn-mini does)."""
    prompts: list[int] = Field(default_factory=list)
    """How many messages each answer was given (memory shows as more)."""

    @property
    def _llm_type(self) -> str:
        return "slow-test-brain"

    def bind_tools(self, tools: Any, **kwargs: Any) -> SlowBrain:
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="".join(self.words)))])

    async def _astream(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        self.log.append("start")
        self.prompts.append(len(messages))
        try:
            if self.heard is not None:
                yield ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata={"transcripts": [self.heard]}))
            for word in self.words:
                await asyncio.sleep(self.delay_s)
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=word))
                if run_manager:
                    await run_manager.on_llm_new_token(word, chunk=chunk)
                yield chunk
            if self.call:
                yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[
                    {"name": self.call["name"], "args": json.dumps(self.call["args"]), "id": "call-1", "index": 0,
                     "type": "tool_call_chunk"}]))
            self.log.append("done")
        except asyncio.CancelledError:
            self.log.append("cancelled")
            raise


class StubChat:
    """Stands in for the server's ChatSALMONN: the live sessions get their brains from the factory."""

    model_name = "stub"

    def _runtime(self, model: Any) -> None:
        return None


class Brains:
    """The brain factory of a test server, keeping every session's brain."""

    def __init__(self, delay_s: float = 0.05, tool: str = "add_note", heard: str | None = None) -> None:
        self.delay_s, self.tool, self.heard = delay_s, tool, heard
        self.made: list[SlowBrain] = []

    def __call__(self, chat: Any, callbacks: list[Any], max_tokens: int) -> BaseChatModel:
        if max_tokens == WATCH_MAX_TOKENS:
            return SlowBrain(words=["Yes."], call=None, delay_s=0)
        args = {"text": "buy milk"} if self.tool == "add_note" else {}
        brain = SlowBrain(callbacks=callbacks, delay_s=self.delay_s, call={"name": self.tool, "args": args},
                          heard=self.heard)
        if callbacks:  # the voice assistant's brain (the clip chat gets none)
            self.made.append(brain)
        return brain


@pytest.fixture
def live_server(tmp_path, run_app) -> Callable[..., Any]:
    """Start a server with live sessions over :class:`SlowBrain` brains; stopped after the test."""
    from salmonn_agent.server.app import create_app
    from salmonn_agent.server.settings import ServerSettings

    def start(brains: Brains | None = None, allow: tuple[str, ...] = ("add_note",), end_of_turn: str = "adaptive",
              turn_end: Callable[[str], bool] | None = None, segmenter: SegmenterConfig | None = None,
              **settings: Any) -> Any:
        options = LiveOptions(allow=list(allow), notes_path=tmp_path / "notes.txt",
                              audit_path=tmp_path / "audit.jsonl", memory_turns=2, brain=brains or Brains(),
                              end_of_turn=end_of_turn, turn_end=turn_end, segmenter=segmenter)
        server = run_app(create_app(ServerSettings(**settings), StubChat, options))
        server.ws = server.base.replace("http", "ws") + "/v1/live"
        return server

    return start


class Client:
    """A live-session client that keeps every message the server sent."""

    def __init__(self, url: str, origin: str | None = None, **hello: Any) -> None:
        self.ws = websockets_sync.connect(url, max_size=None, origin=origin)
        self.messages: list[dict[str, Any]] = []
        from websockets.exceptions import ConnectionClosed

        try:
            self.ws.send(json.dumps({"type": "hello", "format": "s16le", "sample_rate": 16000, **hello}))
        except ConnectionClosed:  # refused before the hello (a foreign origin): the error is still readable
            pass

    def until(self, kind: str, timeout: float = 60.0, count: int = 1) -> dict[str, Any]:
        """The ``count``-th message of type ``kind`` (reading until it comes)."""
        deadline = time.monotonic() + timeout
        while sum(m["type"] == kind for m in self.messages) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind!r} message in {timeout} s; got {[m['type'] for m in self.messages]}")
            self.messages.append(json.loads(self.ws.recv(timeout=left)))
        return [m for m in self.messages if m["type"] == kind][count - 1]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def closed_with(self, timeout: float = 10.0) -> int | None:
        """Read until the server closes the socket; its close code."""
        from websockets.exceptions import ConnectionClosed

        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.messages.append(json.loads(self.ws.recv(timeout=deadline - time.monotonic())))
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        raise AssertionError("the server did not close the socket")

    def send_audio(self, samples: np.ndarray, frame_s: float = 0.1, pace_s: float = 0.0) -> None:
        pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
        step = int(frame_s * SR)
        for a in range(0, pcm.size, step):
            self.ws.send(pcm[a:a + step].tobytes())
            if pace_s:
                time.sleep(pace_s)


def scene(*parts: str) -> np.ndarray:
    return scene_events(*parts)[0]


def scene_events(*parts: str) -> tuple[np.ndarray, list[Any]]:
    """Speech clips (by fixture name) and alarms, 1.2 s apart, after 0.5 s; with their true events."""
    builder = SceneBuilder(noise_db=-60).silence(0.5)
    for part in parts:
        if part == "alarm":
            builder.sound(synth.alarm(1.0))
        else:
            builder.speech(load_audio(SPEECH / f"{part}.flac"))
        builder.silence(1.2)
    return builder.build()


def wav(samples: np.ndarray) -> str:
    out = io.BytesIO()
    sf.write(out, samples, SR, format="WAV")
    return base64.b64encode(out.getvalue()).decode()


def test_the_page_is_served(live_server):
    import httpx

    server = live_server()
    page = httpx.get(server.base + "/")
    assert page.status_code == 200 and "/ui/app.js" in page.text
    assert "AudioWorkletProcessor" in httpx.get(server.base + "/ui/capture-worklet.js").text


@pytest.mark.parametrize(("hello", "code", "close"), [
    ({"format": "f32le"}, "bad_format", 1003),
    ({"sample_rate": 48000}, "bad_format", 1003),
])
def test_wrong_sample_format_is_refused_with_the_fix(live_server, hello, code, close):
    client = Client(live_server().ws, **hello)
    error = client.until("error")
    assert error["code"] == code and "16000" in error["message"] and error["fatal"]
    assert client.closed_with() == close


def test_audio_before_the_hello_is_refused(live_server):
    ws = websockets_sync.connect(live_server().ws)
    ws.send(b"\x00\x00" * 160)
    error = json.loads(ws.recv(timeout=10))
    assert error["code"] == "no_hello" and '"type": "hello"' in error["message"]


def test_api_key_in_the_hello(live_server):
    server = live_server(api_key="sesame")
    refused = Client(server.ws)
    assert refused.until("error")["code"] == "invalid_api_key" and refused.closed_with() == 1008
    assert Client(server.ws, api_key="sesame").until("ready")["format"] == "s16le"


def test_pages_of_other_sites_are_refused(live_server):
    server = live_server()
    foreign = Client(server.ws, origin="http://evil.example")
    error = foreign.until("error")
    assert error["code"] == "bad_origin" and "evil.example" in error["message"] and foreign.closed_with() == 1008
    own = server.base.replace("http://", "")
    assert Client(server.ws, origin=f"http://{own}").until("ready")  # the page the server serves


def test_oversize_and_odd_frames(live_server):
    server = live_server(max_frame_bytes=3200)
    big = Client(server.ws)
    big.until("ready")
    big.ws.send(b"\x00" * 3202)
    error = big.until("error")
    assert error["code"] == "frame_too_large" and "3200" in error["message"] and big.closed_with() == 1009
    odd = Client(server.ws)
    odd.until("ready")
    odd.ws.send(b"\x00" * 33)
    assert odd.until("error")["code"] == "bad_frame" and odd.closed_with() == 1003


def test_frame_rate_and_session_audio_limits(live_server):
    server = live_server(max_frames_per_s=20, max_session_audio_s=1.0)
    fast = Client(server.ws)
    fast.until("ready")
    for _ in range(25):
        fast.ws.send(b"\x00\x00" * 160)
    assert fast.until("error")["code"] == "too_many_frames" and fast.closed_with() == 1008
    long = Client(server.ws)
    long.until("ready")
    long.send_audio(np.zeros(2 * SR, dtype=np.float32), frame_s=0.5)
    error = long.until("error")
    assert error["code"] == "session_audio_limit" and "reconnect" in error["message"]


def test_too_many_sessions_then_a_slot_frees(live_server):
    server = live_server(max_sessions=1)
    first = Client(server.ws)
    first.until("ready")
    second = Client(server.ws)
    error = second.until("error")
    assert error["code"] == "too_many_sessions" and "--max-sessions" in error["message"]
    assert second.closed_with() == 1013
    first.ws.close()
    deadline = time.monotonic() + 10
    while server.server.config.app.state.live_slots.open and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Client(server.ws).until("ready")  # the closed session's slot is free again


def test_a_spoken_request_and_a_sound(live_server, tmp_path):
    # No AudioSet labels on the windows, so the watch asks the (scripted) brain: YAMNet's 8-bit
    # scores of the synthetic alarm sit on the watch's threshold ("Sine wave" 0.5), and which side
    # depends on the CPU's integer kernels.
    server = live_server(max_frames_per_s=1000, segmenter=SegmenterConfig(sound_labels=0))
    client = Client(server.ws)
    ready = client.until("ready")
    assert ready["allow"] == ["add_note"] and "add_note" in ready["tools"]
    client.ws.send(json.dumps({"type": "watch", "targets": ["an alarm"]}))
    assert client.until("watching")["targets"] == ["an alarm"]
    samples, events = scene_events("lights", "alarm")
    client.send_audio(samples)
    turn = client.until("turn")
    windows = [client.until("window"), client.until("window", count=2)]
    assert [w["kind"] for w in windows] == ["speech", "sound"]
    for window, event in zip(windows, events):
        assert window["event_start"] == pytest.approx(event.start, abs=0.3)
        assert window["event_end"] == pytest.approx(event.end, abs=0.3)
    assert client.until("detection")["target"] == "an alarm"
    assert "".join(m["text"] for m in client.of("token")) == "Noted it."
    assert turn["answer"] == "Noted it." and turn["window"]["kind"] == "speech"
    audit = client.until("audit")
    assert (audit["tool"], audit["decision"]) == ("add_note", "allowed")
    assert "buy milk" in (tmp_path / "notes.txt").read_text()
    assert [json.loads(line)["tool"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()] == ["add_note"]


@pytest.mark.parametrize("end_of_turn, heard, judge, wait_ms", [
    ("adaptive", "Note that I need to buy milk.", None, 600),
    ("adaptive", "Note that I need to buy milk and", None, 1200),  # it trails off: a longer wait
    ("fixed", "Note that I need to buy milk and", None, 600),
    # serve --turn-end model: the judge, not the word rule, decides (here: nothing sounds finished)
    ("adaptive", "Note that I need to buy milk.", lambda text: True, 1200),
])
def test_a_session_ends_the_turn_as_its_end_of_turn_says(live_server, end_of_turn, heard, judge, wait_ms):
    server = live_server(Brains(heard=heard), end_of_turn=end_of_turn, turn_end=judge, max_frames_per_s=1000)
    client = Client(server.ws)
    client.until("ready")
    client.send_audio(scene("lights"), pace_s=0.1)  # in real time: the settled window comes 0.6 s before the hangover's
    turn = client.until("turn")
    assert turn["metrics"]["eou_delay_ms"] == pytest.approx(wait_ms, abs=60)


def test_tabs_are_separate_sessions_with_separate_memory(live_server):
    brains = Brains()
    server = live_server(brains, max_frames_per_s=1000)
    a, b = Client(server.ws), Client(server.ws)
    assert a.until("ready")["session"] != b.until("ready")["session"]
    a.send_audio(scene("yes"))
    a.until("turn")
    b.send_audio(scene("yes"))
    b.until("turn")
    a.send_audio(scene("okay"))
    a.until("turn", count=2)
    first_a, first_b = brains.made
    assert first_b.prompts == [2]  # system + request: nothing of the other tab's turn
    assert first_a.prompts[1] > first_a.prompts[0]  # the tab's own turn is remembered


def test_disconnect_mid_answer_cancels_and_runs_no_action(live_server, tmp_path):
    brains = Brains(delay_s=0.5)
    server = live_server(brains, max_frames_per_s=1000)
    client = Client(server.ws)
    client.until("ready")
    client.send_audio(scene("lights"))
    client.until("token")
    client.ws.socket.shutdown(socket.SHUT_RDWR)  # the connection drops: no close frame
    client.ws.socket.close()
    [brain] = brains.made
    deadline = time.monotonic() + 15
    while (brain.log[-1:] != ["cancelled"] or server.server.config.app.state.live_slots.open) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert brain.log == ["start", "cancelled"]
    assert server.server.config.app.state.live_slots.open == 0
    time.sleep(1.0)  # the tool call would have come by now
    assert not (tmp_path / "notes.txt").exists() and not (tmp_path / "audit.jsonl").exists()


def test_chat_about_a_clip(live_server):
    client = Client(live_server().ws)
    client.until("ready")
    client.ws.send(json.dumps({"type": "ask", "question": "What is it?"}))
    assert client.until("error")["code"] == "no_clip"
    client.ws.send(json.dumps({"type": "ask", "audio": "not base64!", "question": "What is it?"}))
    assert client.until("error", count=2)["code"] == "bad_clip"
    client.ws.send(json.dumps({"type": "ask", "audio": wav(scene("yes")), "mime_type": "audio/wav",
                               "question": "What is it?"}))
    answer = client.until("clip_answer")
    assert answer["text"] == "Noted it." and answer["question"] == "What is it?"
    assert client.of("clip_token")
    client.ws.send(json.dumps({"type": "nonsense"}))
    assert client.until("error", count=3)["code"] == "unknown_type"
    client.ws.send(json.dumps({"type": "ask", "question": "And now?"}))  # the same clip again
    assert client.until("clip_answer", count=2)["question"] == "And now?"


def test_speaking_while_an_answer_streams_cancels_it(live_server, tmp_path):
    server = live_server(Brains(delay_s=1.0), max_frames_per_s=1000)  # 3 s answers: time to interrupt
    client = Client(server.ws)
    client.until("ready")
    client.send_audio(scene("lights"))
    client.until("token")
    client.send_audio(scene("hello"))  # barge-in
    first, second = client.until("turn"), client.until("turn", count=2)
    assert first["cancelled"] and first["interrupted"] and not first["actions"]
    assert not second["cancelled"] and second["answer"] == "Noted it."
    assert [a["tool"] for a in client.of("audit")] == ["add_note"]  # only the second turn acted


def test_risky_actions_wait_for_the_pages_yes(live_server, tmp_path):
    (tmp_path / "notes.txt").write_text("1. buy milk\n")
    server = live_server(Brains(tool="delete_notes"), allow=("add_note", "delete_notes"), max_frames_per_s=1000)
    refusing, agreeing = Client(server.ws), Client(server.ws)
    for client, ok in ((refusing, False), (agreeing, True)):
        client.until("ready")
        client.send_audio(scene("lights"))
        ask = client.until("confirm")
        assert ask["tool"] == "delete_notes" and ask["window"]["kind"] == "speech"
        client.ws.send(json.dumps({"type": "confirm", "id": ask["id"], "ok": ok}))
        audit = client.until("audit")
        assert (audit["decision"], audit["code"]) == (("allowed", "confirmed") if ok else ("denied", "not_confirmed"))
    agreeing.ws.send(json.dumps({"type": "confirm", "id": "nope", "ok": True}))
    assert agreeing.until("error")["code"] == "unknown_confirmation"


def test_session_brains_share_the_servers_engine():
    from salmonn_agent.chat_model import ChatSALMONN
    from salmonn_agent.server.live import session_brain

    chat = ChatSALMONN(model="any", max_tokens=200)
    brain = session_brain(chat, [], 7)
    assert brain._runtimes is chat._runtimes  # one model, one batching engine for every tab
    assert (brain.max_tokens, brain.temperature, chat.max_tokens) == (7, 0, 200)

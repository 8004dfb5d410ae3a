"""Live sessions: a browser's microphone, over a WebSocket, into the voice assistant.

``WS /v1/live`` (only with ``salmonn-agent serve --ui``). Each connection is one session with its
own front-end (:class:`~salmonn_agent.stream.Listener`: the same segmenter a microphone feeds),
its own :class:`~salmonn_agent.agent.runtime.VoiceAgent` (memory, timers, barge-in) and its own
sound watch; the model, its batching engine and the notes file are shared.

The client's first message is a JSON text frame::

    {"type": "hello", "format": "s16le", "sample_rate": 16000, "api_key": "KEY"}

(``api_key`` only when the server has one). Then binary frames carry 16 kHz mono 16-bit
little-endian PCM, and text frames carry JSON requests:

- ``{"type": "ask", "question": "...", "audio": BASE64}``: chat about a clip (the bytes of an
  audio file; without ``audio``, the session's previous clip);
- ``{"type": "watch", "targets": ["a dog barking"]}``: the sound watch's targets (``[]``: off);
- ``{"type": "confirm", "id": ID, "ok": true}``: the answer to a ``confirm`` message, which asks
  before a risky action runs (no answer within ``CONFIRM_TIMEOUT_S``: refused).

The server sends JSON text frames, each with a ``type``: ``ready``, ``onset``, ``window``,
``answer_start``, ``token``, ``turn``, ``confirm``, ``audit``, ``detection``, ``timer``, ``event``,
``clip_token``, ``clip_answer`` and ``error`` (``code`` and a ``message`` that says what to
fix; ``fatal`` errors are followed by the close of the socket).

A browser's connection must come from this server's own page (its ``Origin`` names the
server's host); others are refused. Limits (:class:`~salmonn_agent.server.settings.ServerSettings`):
sessions at once, frame size, frames per second, audio per session, and the body limit for a
clip. Closing the socket (or losing it) ends the session: a generation in progress is cancelled
before any of its tool calls runs (an action already running finishes; none starts half-way).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import hmac
import json
import logging
import queue
import threading
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI, WebSocket
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from starlette.websockets import WebSocketDisconnect

from salmonn_agent.agent.actions import ActionsConfig, build_actions
from salmonn_agent.agent.audio_refs import WindowStore
from salmonn_agent.agent.policy import ActionGate, ActionPolicy, ActionRequest, AuditLog, AuditRecord
from salmonn_agent.agent.runtime import AgentConfig, TurnResult, VoiceAgent, memory_turns_for, offered_actions
from salmonn_agent.agent.watch import Detection, SoundWatch
from salmonn_agent.errors import SalmonnError
from salmonn_agent.registry import profile_of
from salmonn_agent.server.settings import ServerSettings, Slots
from salmonn_agent.stream import AudioChunk, AudioWindow, Listener, SegmenterConfig, Source

logger = logging.getLogger(__name__)

PCM_FORMAT = "s16le"
"""The only sample format of live audio frames: signed 16-bit little-endian mono."""
PCM_RATE = 16_000
"""The only sample rate of live audio frames (the browser page resamples to it)."""
WATCH_MAX_TOKENS = 4
"""The sound watch only needs a yes or a no."""
HELLO_TIMEOUT_S = 10.0
CONFIRM_TIMEOUT_S = 30.0
"""How long a risky action waits for the page's yes before it is refused."""
_QUEUE_SECONDS = 30
"""Audio a session may have waiting for its front-end before frames are dropped (counted as lost)."""

BrainFactory = Callable[[Any, list[BaseCallbackHandler], int], BaseChatModel]
"""``(server chat model, callbacks, max_tokens) -> brain`` of one session."""


def session_brain(chat: Any, callbacks: list[BaseCallbackHandler], max_tokens: int) -> BaseChatModel:
    """A greedy copy of the server's ChatSALMONN with the session's callbacks.

    ``model_copy`` is shallow, so the copy shares the original's loaded model, batching engine
    and caches: every session is batched with every other request.
    """
    return chat.model_copy(update={"temperature": 0, "max_tokens": max_tokens, "callbacks": callbacks or None})


@dataclass
class LiveOptions:
    """What each live session's voice assistant is built with (``serve --ui``'s options)."""

    allow: list[str] = field(default_factory=list)
    """Tools heard audio may trigger (the brain is offered these, and those its model learned its
    requests with: see :func:`~salmonn_agent.agent.runtime.offered_actions`)."""
    notes_path: Path | None = None
    webhook_url: str | None = None
    audit_path: Path | None = None
    """JSON Lines audit log shared by every session (None: in memory only)."""
    audit_redact: bool = False
    max_tokens: int = 64
    memory_turns: int | None = None
    """Turns remembered per session (None: the brain's default, see ``memory_turns_for``)."""
    barge_in: Literal["cancel", "queue"] = "cancel"
    end_of_turn: Literal["adaptive", "fixed"] = "adaptive"
    """The voice assistant's end of turn (``AgentConfig.end_of_turn``)."""
    turn_end: Callable[[str], bool] | None = None
    """What judges whether a request sounds unfinished, for the adaptive end of turn (None: the word
    rule; ``serve --turn-end model`` sets salmonn-mini's base LLM here once the model has loaded,
    see :func:`~salmonn_agent.agent.commands.turn_end_judge`), shared by the sessions."""
    watch_cooldown_s: float = 10.0
    segmenter: SegmenterConfig | None = None
    brain: BrainFactory = session_brain
    """Builds a session's brain (tests put a scripted one here)."""
    page: bool = True
    """Serve the browser page at ``/``."""

    def actions_config(self) -> ActionsConfig:
        """The actions' configuration (notes file, webhook)."""
        given: dict[str, Any] = {}
        if self.notes_path is not None:
            given["notes_path"] = self.notes_path
        if self.webhook_url is not None:
            given["webhook_url"] = self.webhook_url
        return ActionsConfig(**given)


class PushSource(Source):
    """A :class:`~salmonn_agent.stream.Source` fed by :meth:`push` from another thread (the
    WebSocket): 16 kHz mono float32 blocks. Audio that finds the queue full is dropped and
    counted as a gap, so a slow front-end never holds up the socket."""

    def __init__(self, max_blocks: int) -> None:
        super().__init__()
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(max_blocks)
        self._lost = 0
        self._lock = threading.Lock()

    @property
    def dropped_samples(self) -> int:
        """Samples lost because the queue was full."""
        return self._lost

    def push(self, samples: np.ndarray) -> None:
        """Queue a block of samples (never blocks)."""
        try:
            self._queue.put_nowait(samples)
        except queue.Full:
            with self._lock:
                self._lost += samples.size

    def stop(self) -> None:
        """End the stream: the iteration ends after what is queued."""
        super().stop()
        try:
            self._queue.put_nowait(None)
        except queue.Full:  # the consumer sees the stop flag at its next heartbeat
            pass

    def chunks(self) -> Iterator[AudioChunk]:
        """The pushed blocks, with an empty heartbeat chunk every 0.1 s without audio."""
        pos, lost_seen = 0, 0
        while True:
            try:
                block = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self.stopped:
                    return
                yield AudioChunk(np.zeros(0, dtype=np.float32), pos)
                continue
            if block is None:
                return
            lost = self._lost
            pos += lost - lost_seen  # a hole where audio was dropped
            lost_seen = lost
            yield AudioChunk(block, pos)
            pos += block.size


class LiveError(Exception):
    """A problem to report to the client as ``{"type": "error", ...}``; ``close`` is the
    WebSocket close code when the session must end (None: it goes on)."""

    def __init__(self, code: str, message: str, close: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.close = code, message, close


class _TokenRelay(AsyncCallbackHandler):
    """Sends the brain's streamed tokens to the client."""

    def __init__(self, emit: Callable[[dict[str, Any]], None]) -> None:
        self.emit = emit

    async def on_chat_model_start(self, serialized: dict[str, Any], messages: Any, **kwargs: Any) -> None:
        self.emit({"type": "answer_start"})

    async def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        if token:
            self.emit({"type": "token", "text": token})


class _SessionAudit(AuditLog):
    """The session's view of the audit log: every record goes to the shared log and to the client."""

    def __init__(self, shared: AuditLog, on_record: Callable[[AuditRecord], None]) -> None:
        super().__init__(None, keep=200, redact_results=shared.redact_results)
        self.shared, self.on_record = shared, on_record

    def write(self, record: AuditRecord) -> None:
        """Write ``record`` to the shared log, keep it, and show it to the client."""
        self.shared.write(record)
        super().write(record)
        self.on_record(self.records()[-1])  # redacted like the log


class _ObservedFeed:
    """The listener as :meth:`VoiceAgent.run` reads it, telling the client of each window first."""

    def __init__(self, listener: Listener, on_window: Callable[[AudioWindow], None]) -> None:
        self.listener, self.on_window = listener, on_window

    @property
    def on_onset(self) -> Callable[[str, float], None] | None:
        """The listener's onset callback."""
        return self.listener.on_onset

    @on_onset.setter
    def on_onset(self, callback: Callable[[str, float], None] | None) -> None:
        self.listener.on_onset = callback

    async def awindows(self) -> AsyncIterator[AudioWindow]:
        """The listener's windows, each shown to the client as it is cut."""
        windows = self.listener.awindows()
        try:
            async for window in windows:
                if window.kind != "pause":  # a preview the agent may answer early, not a window of its own
                    self.on_window(window)
                yield window
        finally:
            await windows.aclose()


def window_message(window: AudioWindow) -> dict[str, Any]:
    """A window as the client sees it: kind, stream times, why it was cut, AudioSet tags."""
    return {
        "type": "window", "index": window.index, "kind": window.kind,
        "start": round(window.start, 3), "end": round(window.end, 3),
        "event_start": round(window.event_start, 3), "event_end": round(window.event_end, 3),
        "reason": window.metrics.reason, "level_db": round(window.metrics.level_db, 1),
        "tags": [{"label": t.label, "score": round(float(t.score), 3)} for t in window.tags[:3]],
    }


def error_message(err: LiveError) -> dict[str, Any]:
    """The JSON error frame of ``err``."""
    return {"type": "error", "code": err.code, "message": err.message, "fatal": err.close is not None}


def add_live_routes(app: FastAPI, settings: ServerSettings, options: LiveOptions,
                    chat: Callable[[], Any]) -> None:
    """Add ``WS /v1/live``; ``chat()`` is the server's loaded chat model (None while loading)."""
    slots = Slots(settings.max_sessions)
    shared_audit = AuditLog(options.audit_path, redact_results=options.audit_redact)
    app.state.live_slots = slots

    @app.websocket("/v1/live")
    async def live(ws: WebSocket) -> None:
        await ws.accept()
        session: LiveSession | None = None
        taken = False
        try:
            _check_origin(ws)
            hello = await _hello(ws, settings)
            model = chat()
            if model is None:
                raise LiveError("model_loading", "The model is still loading; reconnect in a few seconds.", 1013)
            if not slots.take():
                raise LiveError("too_many_sessions", f"The server already has {settings.max_sessions} live sessions "
                                "(its limit); close another tab, or start the server with a larger "
                                "--max-sessions.", 1013)
            taken = True
            session = LiveSession(ws, settings, options, model, shared_audit)
            await session.run(hello)
        except LiveError as err:
            await _send_and_close(ws, err)
        except WebSocketDisconnect:
            pass
        except Exception as err:  # noqa: BLE001 - the client gets a JSON error, the log the traceback
            logger.exception("live session failed")
            await _send_and_close(ws, LiveError("internal_error", f"Internal error: {type(err).__name__}: {err}; "
                                                "reconnect for a new session.", 1011))
        finally:
            if taken:
                slots.release()


def _check_origin(ws: WebSocket) -> None:
    """Refuse pages of other sites: a browser lets any page open a WebSocket to this server, and
    with it use the microphone's assistant and its actions (clients that are not browsers send no
    Origin and are let through)."""
    origin = ws.headers.get("origin")
    if origin is None:
        return
    if urllib.parse.urlsplit(origin).netloc != ws.headers.get("host", ""):
        raise LiveError("bad_origin", f"A page from {origin} may not open live sessions here: open the page "
                        "this server serves (its own address, e.g. http://127.0.0.1:8000/).", 1008)


async def _hello(ws: WebSocket, settings: ServerSettings) -> dict[str, Any]:
    """Read and check the first message: key, sample format and rate."""
    try:
        first = await asyncio.wait_for(ws.receive(), HELLO_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise LiveError("no_hello", "No hello message came: send {\"type\": \"hello\", \"format\": \"s16le\", "
                        "\"sample_rate\": 16000} first.", 1008) from None
    if first["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(first.get("code", 1000))
    try:
        hello = json.loads(first.get("text") or "")
    except json.JSONDecodeError:
        hello = None
    if not isinstance(hello, dict) or hello.get("type") != "hello":
        raise LiveError("no_hello", "The first message must be JSON text: {\"type\": \"hello\", \"format\": "
                        "\"s16le\", \"sample_rate\": 16000} (audio frames come after it).", 1008)
    key = settings.api_key.get_secret_value() if settings.api_key else None
    if key and not hmac.compare_digest(str(hello.get("api_key") or "").encode(), key.encode()):
        raise LiveError("invalid_api_key", "Missing or wrong API key: put the server's key in the hello "
                        "message's \"api_key\" (in the page: the key field, or #key=KEY in its address).", 1008)
    if hello.get("format") != PCM_FORMAT or hello.get("sample_rate") != PCM_RATE:
        raise LiveError("bad_format", f"Audio must be {PCM_RATE} Hz mono {PCM_FORMAT} (signed 16-bit little-endian "
                        f"PCM), got format={hello.get('format')!r}, sample_rate={hello.get('sample_rate')!r}: "
                        "resample in the client and send {\"format\": \"s16le\", \"sample_rate\": 16000}.", 1003)
    return hello


async def _send_and_close(ws: WebSocket, err: LiveError) -> None:
    try:
        await ws.send_json(error_message(err))
        if err.close is not None:
            await ws.close(err.close)
    except (RuntimeError, WebSocketDisconnect, OSError):  # the client is already gone
        pass


class LiveSession:
    """One browser tab: its front-end, voice assistant, sound watch, timers and clip chat."""

    def __init__(self, ws: WebSocket, settings: ServerSettings, options: LiveOptions, chat: Any,
                 shared_audit: AuditLog) -> None:
        from salmonn_agent.agent.actions import TimerBoard

        self.ws, self.settings, self.options, self.chat = ws, settings, options, chat
        self.id = uuid.uuid4().hex[:8]
        self.loop = asyncio.get_running_loop()
        self.out: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.board = TimerBoard(on_fire=lambda t: self.emit({"type": "timer", **t.model_dump(mode="json")}))
        tools = build_actions(options.actions_config(), board=self.board,
                              on_event=lambda e: self.emit({"type": "event", **e.model_dump(mode="json")}))
        self.tool_names = [t.name for t in tools]
        unknown = [name for name in options.allow if name not in self.tool_names]
        if unknown:  # the command checks this at start; a hand-built LiveOptions may not
            self.board.close()
            raise LiveError("bad_config", f"--allow names unknown tools {unknown}; the tools are "
                            f"{', '.join(self.tool_names)}.", 1011)
        audit = _SessionAudit(shared_audit, lambda r: self.emit({"type": "audit", **r.model_dump(mode="json")}))
        self.confirmations: dict[str, tuple[threading.Event, list[bool]]] = {}
        gate = ActionGate(ActionPolicy(allow=options.allow), audit, confirm=self._confirm)
        memory = memory_turns_for(profile_of(chat)) if options.memory_turns is None else options.memory_turns
        brain = options.brain(chat, [_TokenRelay(self.emit)], options.max_tokens)
        self.watch_chat = options.brain(chat, [], WATCH_MAX_TOKENS)
        self.clip_chat = options.brain(chat, [], options.max_tokens)
        self.agent = VoiceAgent(
            brain, actions=offered_actions(tools, options.allow, profile_of(chat)), gate=gate, store=WindowStore(),
            config=AgentConfig(barge_in=options.barge_in, max_memory_turns=memory, brain_hears_audio=True,
                               end_of_turn=options.end_of_turn),
            on_turn=self._on_turn, turn_end=options.turn_end,
        )
        self.source = PushSource(max_blocks=_QUEUE_SECONDS * settings.max_frames_per_s)
        self.listener = Listener(self.source, self.agent.segmenter_config(options.segmenter), on_onset=self._on_onset)
        self.frames: collections.deque[float] = collections.deque()
        self.samples = 0
        self.clip: tuple[bytes, str] | None = None
        self.ask_task: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        self.closed = False

    # ------------------------------------------------------------ to the client (any thread)

    def emit(self, message: dict[str, Any]) -> None:
        """Queue ``message`` for the client (callable from any thread)."""
        try:
            self.loop.call_soon_threadsafe(self.out.put_nowait, message)
        except RuntimeError:  # the loop is closed: the session is over
            pass

    def _on_onset(self, kind: str, t: float) -> None:
        self.emit({"type": "onset", "kind": kind, "t": round(t, 3)})
        self.agent.on_onset(kind, t)

    def _on_turn(self, result: TurnResult) -> None:
        self.emit({"type": "turn", **result.model_dump(mode="json")})

    def _confirm(self, request: ActionRequest) -> bool:
        """Ask the page before a risky action runs (the gate's thread waits for the answer)."""
        if self.closed:  # the page is gone: nobody can say yes
            return False
        ask_id = uuid.uuid4().hex[:8]
        answered, ok = threading.Event(), [False]
        self.confirmations[ask_id] = (answered, ok)
        self.emit({"type": "confirm", "id": ask_id, "tool": request.tool, "args": request.args,
                   "window": request.window, "timeout_s": CONFIRM_TIMEOUT_S})
        try:
            return answered.wait(CONFIRM_TIMEOUT_S) and ok[0]
        finally:
            self.confirmations.pop(ask_id, None)

    def _answer_confirmation(self, request: dict[str, Any]) -> None:
        pending = self.confirmations.get(str(request.get("id")))
        if pending is None:
            raise LiveError("unknown_confirmation", f"No action waits for confirmation {request.get('id')!r} "
                            f"(it was answered, or refused after {CONFIRM_TIMEOUT_S:g} s).")
        answered, ok = pending
        ok[0] = request.get("ok") is True
        answered.set()

    def _on_detect(self, detection: Detection) -> None:
        self.emit({"type": "detection", **detection.model_dump(mode="json")})

    async def _sender(self) -> None:
        while (message := await self.out.get()) is not None:
            await self.ws.send_json(message)

    # ------------------------------------------------------------ the session

    async def run(self, hello: dict[str, Any]) -> None:
        """Serve the session until the client leaves or breaks a limit."""
        s = self.settings
        self.emit({"type": "ready", "session": self.id, "model": getattr(self.chat, "model_name", ""),
                   "format": PCM_FORMAT, "sample_rate": PCM_RATE, "allow": self.options.allow,
                   "tools": self.tool_names,
                   "limits": {"max_frame_bytes": s.max_frame_bytes, "max_frames_per_s": s.max_frames_per_s,
                              "max_session_audio_s": s.max_session_audio_s, "max_clip_bytes": s.max_body_bytes}})
        sender = asyncio.create_task(self._sender())
        self.listener.start()
        agent = asyncio.create_task(self.agent.run(_ObservedFeed(self.listener, lambda w: self.emit(window_message(w)))))
        try:
            await self._receive(agent)
        finally:
            # Cancelling the agent cancels a generation in progress; no tool call starts after it,
            # and an action waiting for the page's confirmation is refused.
            self.closed = True
            for answered, _ in list(self.confirmations.values()):
                answered.set()
            for task in (agent, self.ask_task):
                if task is not None:
                    task.cancel()
            await asyncio.gather(*(t for t in (agent, self.ask_task) if t is not None), return_exceptions=True)
            self.listener.close()
            self.board.close()
            await self.out.put(None)
            try:
                await asyncio.wait_for(sender, 2.0)  # the last messages (an error) go out first
                if self.close_code is not None:
                    await self.ws.close(self.close_code)
            except Exception:  # noqa: BLE001 - the socket is gone; nothing more to tell
                sender.cancel()

    async def _receive(self, agent: asyncio.Task[Any]) -> None:
        """Handle the client's messages until it leaves, breaks a limit, or the assistant stops."""
        while True:
            receive = asyncio.ensure_future(self.ws.receive())
            await asyncio.wait({receive, agent}, return_when=asyncio.FIRST_COMPLETED)
            if not receive.done():  # the assistant stopped: only an error ends it while the client is here
                receive.cancel()
                problem = None if agent.cancelled() else agent.exception()
                logger.error("live session %s: the assistant stopped: %r", self.id, problem)
                self.emit(error_message(LiveError("assistant_failed", f"The assistant stopped ({problem}); "
                                                  "reconnect for a new session.", 1011)))
                self.close_code = 1011
                return
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                return
            try:
                if message.get("bytes") is not None:
                    self._audio(message["bytes"])
                else:
                    self._request(message.get("text") or "")
            except LiveError as err:
                self.emit(error_message(err))
                if err.close is not None:
                    self.close_code = err.close
                    return

    def _audio(self, data: bytes) -> None:
        s = self.settings
        if len(data) > s.max_frame_bytes:
            raise LiveError("frame_too_large", f"An audio frame of {len(data)} bytes is over the limit of "
                            f"{s.max_frame_bytes} bytes; send shorter frames (e.g. 100 ms = 3,200 bytes).", 1009)
        if len(data) % 2:
            raise LiveError("bad_frame", f"An audio frame of {len(data)} bytes is not whole 16-bit samples: send "
                            "s16le mono PCM, 2 bytes a sample.", 1003)
        now = time.monotonic()
        self.frames.append(now)
        while self.frames and now - self.frames[0] > 1.0:
            self.frames.popleft()
        if len(self.frames) > s.max_frames_per_s:
            raise LiveError("too_many_frames", f"More than {s.max_frames_per_s} audio frames in one second; send "
                            "fewer, longer frames (the page sends 10 a second).", 1008)
        self.samples += len(data) // 2
        if self.samples > s.max_session_audio_s * PCM_RATE:
            raise LiveError("session_audio_limit", f"This session streamed its limit of {s.max_session_audio_s:g} s "
                            "of audio; reconnect for a new session.", 1008)
        if data:
            self.source.push(np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0)

    def _request(self, text: str) -> None:
        try:
            request = json.loads(text)
        except json.JSONDecodeError as err:
            raise LiveError("bad_json", f"A text message is not valid JSON ({err}); send JSON objects with a "
                            "\"type\" (ask, watch).") from None
        kind = request.get("type") if isinstance(request, dict) else None
        if kind == "ask":
            if self.ask_task is not None and not self.ask_task.done():
                self.ask_task.cancel()  # a new question replaces the one being answered
            self.ask_task = asyncio.create_task(self._ask(request))
        elif kind == "watch":
            self._set_watch(request.get("targets"))
        elif kind == "confirm":
            self._answer_confirmation(request)
        else:
            raise LiveError("unknown_type", f"Unknown message type {kind!r}: send \"ask\", \"watch\" or "
                            "\"confirm\" as JSON text, and audio as binary frames.")

    def _set_watch(self, targets: Any) -> None:
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise LiveError("bad_watch", "\"targets\" must be a list of strings, e.g. [\"a dog barking\"] "
                            "([] turns the watch off).")
        cleaned = [t.strip()[:100] for t in targets if t.strip()][:8]
        self.agent.watch = (SoundWatch(self.watch_chat, cleaned, cooldown_s=self.options.watch_cooldown_s,
                                       on_detect=self._on_detect) if cleaned else None)
        self.emit({"type": "watching", "targets": cleaned})

    async def _ask(self, request: dict[str, Any]) -> None:
        """Answer a typed question about a clip, streamed as ``clip_token`` messages."""
        try:
            question = str(request.get("question") or "").strip() or "Please describe the audio."
            data = request.get("audio")
            if data:
                if not isinstance(data, str) or len(data) * 3 // 4 > self.settings.max_body_bytes:
                    raise LiveError("clip_too_large", "The clip is not base64 text or is over the server's limit of "
                                    f"{self.settings.max_body_bytes / 1e6:g} MB; send a shorter clip.")
                try:
                    clip = base64.b64decode(data, validate=True)
                except binascii.Error:
                    raise LiveError("bad_clip", "\"audio\" is not valid base64: send the bytes of an audio "
                                    "file (WAV, FLAC, OGG, MP3) as base64.") from None
                self.clip = (clip, str(request.get("mime_type") or "application/octet-stream"))
            if self.clip is None:
                raise LiveError("no_clip", "There is no clip to ask about: upload or record one first.")
            clip, mime = self.clip
            message = HumanMessage(content=[
                {"type": "audio", "base64": base64.b64encode(clip).decode(), "mime_type": mime},
                {"type": "text", "text": question}])
            answer = ""
            async for piece in self.clip_chat.astream([message]):
                if piece.content:
                    answer += str(piece.content)
                    self.emit({"type": "clip_token", "text": str(piece.content)})
            self.emit({"type": "clip_answer", "question": question, "text": answer.strip()})
        except LiveError as err:
            self.emit(error_message(err))
        except (SalmonnError, ValueError) as err:
            self.emit(error_message(LiveError("bad_clip", f"The clip could not be heard: {err}")))

"""The OpenAI-compatible HTTP server: one loaded SALMONN, any client.

``create_app(settings, load)`` builds a FastAPI app whose routes are OpenAI's:

- ``POST /v1/chat/completions``: text and ``input_audio`` parts, tools, ``response_format``,
  ``stream: true`` (Server-Sent Events in OpenAI's chunk format), SALMONN's ``lora_scale`` /
  ``num_beams``; answered by one :class:`~salmonn_agent.chat_model.ChatSALMONN`, so concurrent
  requests share its batching engine and caches;
- ``POST /v1/audio/transcriptions``: OpenAI's multipart upload, answered by the model's speech
  recognition instruction;
- ``GET /v1/models`` and ``GET /health`` (503 until the model is loaded);
- with ``live`` options (``serve --ui``): ``WS /v1/live``, the voice assistant on a browser's
  microphone (:mod:`salmonn_agent.server.live`), and its page at ``/``.

Limits: a body cap (413), a bound on requests in flight (503 with ``Retry-After``), an optional
Bearer key. Messages may carry audio only as bytes: local paths, ``file://`` and remote URLs are
refused. A client that disconnects cancels its generation. Every error is an OpenAI error object.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from salmonn_agent.agent.hearing import TRANSCRIBE_PROMPT
from salmonn_agent.chat.errors import ContentBlockError, GenerationTimeout, ToolCallError
from salmonn_agent.chat_model import ChatSALMONN
from salmonn_agent.errors import PromptTooLongError, SalmonnError, format_validation_error
from salmonn_agent.server.live import LiveOptions, add_live_routes
from salmonn_agent.server.settings import ServerSettings, Slots
from salmonn_agent.server.wire import (
    ChatCompletionRequest,
    chunk,
    completion,
    error_body,
    finish_reason,
    new_completion_id,
    response_format_binding,
    to_messages,
    tool_call_deltas,
    unsupported_options,
    usage,
)

logger = logging.getLogger(__name__)

TRANSCRIPTION_FORMATS = ("json", "text")
"""``response_format`` values of ``/v1/audio/transcriptions`` this server writes."""
UPLOAD_MIME = {"wav": "audio/wav", "wave": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg",
               "oga": "audio/ogg", "opus": "audio/ogg", "mp3": "audio/mpeg", "mpeg": "audio/mpeg",
               "aiff": "audio/aiff", "aif": "audio/aiff"}
"""Upload file extensions → the MIME type of their audio block (others: read from the bytes)."""


class ServerState:
    """The chat model the routes share, whether it is loaded, and the requests in flight."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.chat: ChatSALMONN | None = None
        self.load_error: str | None = None
        self.requests = Slots(settings.max_in_flight)
        """Requests running or waiting, against ``max_in_flight``."""


class APIError(Exception):
    """An error answered in OpenAI's format with an HTTP status."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.headers = status, message, kind, code, headers

    def response(self) -> JSONResponse:
        """The JSON response of this error."""
        return JSONResponse(error_body(self.message, self.kind, self.code), status_code=self.status,
                            headers=self.headers)


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413 before it is all read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        tracked = _StartTracker(send)

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counted_receive, tracked)
        except _BodyTooLarge:
            if not tracked.started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(error_body(
            f"The request body is over the server's limit of {self.max_bytes / 1e6:g} MB; send a shorter "
            "or compressed clip (or start the server with a larger --max-body-mb).",
            code="request_too_large")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


class _StartTracker:
    """An ASGI ``send`` that remembers whether the response has started (after which no error
    response can be sent any more)."""

    def __init__(self, send: Send) -> None:
        self.send, self.started = send, False

    async def __call__(self, message: Message) -> None:
        self.started = self.started or message["type"] == "http.response.start"
        await self.send(message)


def create_app(settings: ServerSettings, load: Callable[[], ChatSALMONN], live: LiveOptions | None = None) -> FastAPI:
    """The server's FastAPI app; ``load`` builds the chat model (called once, off the event loop).

    ``live``: also serve live sessions (``WS /v1/live``) with these assistant options, and the
    browser page at ``/`` when ``live.page`` is set.
    """
    state = ServerState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def load_in_background() -> None:
            try:
                chat = await asyncio.to_thread(_load_and_warm, load)
            except Exception as err:  # noqa: BLE001 - reported by /health and every request
                logger.error("the model could not be loaded: %s", err)
                state.load_error = str(err)
                return
            state.chat = chat
            logger.info("model %s loaded; serving", chat.model_name)

        task = asyncio.create_task(load_in_background())
        yield
        task.cancel()

    app = FastAPI(title="salmonn-agent", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.server = state

    @app.exception_handler(APIError)
    async def api_error(request: Request, err: APIError) -> JSONResponse:
        return err.response()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        # Only the transcription form is validated by FastAPI (chat completions parse their own JSON).
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid value')}" if where else str(first.get("msg"))
        return APIError(400, message).response()

    async def require_key(request: Request) -> None:
        """The Bearer key check of every ``/v1`` route (``/health`` stays open for probes)."""
        key = settings.api_key.get_secret_value() if settings.api_key else None
        if key:
            header = request.headers.get("authorization", "")
            given = header[7:] if header.lower().startswith("bearer ") else ""
            if not hmac.compare_digest(given.encode(), key.encode()):
                raise APIError(401, "Missing or wrong API key: send 'Authorization: Bearer <key>' with the "
                               "server's key.", code="invalid_api_key")

    guarded = [Depends(require_key)]

    @app.get("/health")
    async def health() -> JSONResponse:
        if state.chat is not None:
            return JSONResponse({"status": "ok", "model": state.chat.model_name})
        if state.load_error is not None:
            return JSONResponse({"status": "error", "error": state.load_error}, status_code=500)
        return JSONResponse({"status": "loading"}, status_code=503)

    @app.get("/v1/models", dependencies=guarded)
    async def models() -> dict[str, Any]:
        chat = _ready(state)
        return {"object": "list", "data": [{"id": chat.model_name, "object": "model", "created": 0,
                                            "owned_by": "salmonn-agent"}]}

    @app.post("/v1/chat/completions", dependencies=guarded)
    async def chat_completions(request: Request) -> Any:
        body = await _json_body(request)
        try:
            parsed = ChatCompletionRequest.model_validate(body)
        except ValidationError as err:
            raise APIError(400, format_validation_error(err)) from None
        chat = _ready(state)
        if (reason := unsupported_options(parsed)) is not None:
            raise APIError(400, reason)
        try:
            messages = to_messages(parsed.messages)
            kwargs = _call_options(parsed)
        except ValueError as err:
            raise APIError(400, str(err)) from None
        if settings.request_timeout_s is not None:
            kwargs["timeout"] = settings.request_timeout_s
        if not state.requests.take():
            raise _busy(settings)
        if parsed.stream:
            include_usage = bool((parsed.stream_options or {}).get("include_usage"))
            return StreamingResponse(_stream(state, chat, messages, kwargs, include_usage),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            message = await _until_disconnect(request, chat.ainvoke(messages, **kwargs))
        finally:
            state.requests.release()
        return completion(message, chat.model_name)

    @app.post("/v1/audio/transcriptions", dependencies=guarded)
    async def transcriptions(
        request: Request,
        file: UploadFile = File(...),
        model: str | None = Form(None),
        prompt: str | None = Form(None),
        response_format: str = Form("json"),
        language: str | None = Form(None),
    ) -> Any:
        """OpenAI's transcription upload. ``model`` names any model (the loaded one answers);
        ``prompt`` is given to the model as words the speech may contain; ``language`` is
        accepted for compatibility and not used (the model's instruction decides)."""
        chat = _ready(state)
        if response_format not in TRANSCRIPTION_FORMATS:
            raise APIError(400, f"response_format {response_format!r} is not supported; use "
                                f"{' or '.join(TRANSCRIPTION_FORMATS)}.", code="unsupported_value")
        data = await file.read()
        if not data:
            raise APIError(400, "The uploaded file is empty.")
        suffix = (file.filename or "").rsplit(".", 1)[-1].lower() if "." in (file.filename or "") else ""
        messages: list[dict[str, Any]] = []
        if prompt:
            messages.append({"role": "system", "content": f"The speech may contain these words: {prompt}"})
        messages.append({"role": "user", "content": [
            {"type": "audio", "base64": base64.b64encode(data).decode(),
             "mime_type": UPLOAD_MIME.get(suffix, "application/octet-stream")},
            {"type": "text", "text": TRANSCRIBE_PROMPT}]})
        if not state.requests.take():
            raise _busy(settings)
        try:
            message = await _until_disconnect(
                request, chat.ainvoke(messages, temperature=0, timeout=settings.request_timeout_s))
        finally:
            state.requests.release()
        text = str(message.content).strip()
        if response_format == "text":
            return PlainTextResponse(text + "\n")
        return {"text": text, "usage": {"type": "tokens", **{k: v for k, v in usage(message).items()
                                                            if k != "prompt_tokens_details"}}}

    if live is not None:
        add_live_routes(app, settings, live, lambda: state.chat)
        if live.page:
            _add_page(app)
    app.add_middleware(_ErrorsMiddleware)
    app.add_middleware(_ReplicaHeader)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)  # added last: runs first
    return app


UI_DIR = Path(__file__).with_name("ui")
"""The browser page's files (plain HTML, CSS and JavaScript; no build step)."""


def _add_page(app: FastAPI) -> None:
    """Serve the browser page: ``/`` and its files under ``/ui/``."""
    from fastapi.responses import FileResponse
    from fastapi.staticfiles import StaticFiles

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(UI_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/ui", StaticFiles(directory=UI_DIR), name="ui")


def _load_and_warm(load: Callable[[], ChatSALMONN]) -> ChatSALMONN:
    chat = load()
    chat._runtime(None)  # load the model now, not on the first request
    return chat


def _ready(state: ServerState) -> ChatSALMONN:
    if state.chat is None:
        if state.load_error is not None:
            raise APIError(500, f"The model could not be loaded: {state.load_error}", kind="server_error")
        raise APIError(503, "The model is still loading; retry in a few seconds (GET /health says when).",
                       kind="server_error", code="model_loading", headers={"Retry-After": "5"})
    return state.chat


def _busy(settings: ServerSettings) -> APIError:
    return APIError(503, f"The server is busy ({settings.max_in_flight} requests in flight); retry shortly.",
                    kind="server_error", code="overloaded", headers={"Retry-After": str(settings.retry_after_s)})


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise APIError(400, f"The request body is not valid JSON ({err}).") from None


def _call_options(parsed: ChatCompletionRequest) -> dict[str, Any]:
    """ChatSALMONN per-call parameters of a request."""
    kwargs: dict[str, Any] = {}
    if parsed.tools:
        kwargs["tools"] = parsed.tools
        if parsed.tool_choice is not None:
            kwargs["tool_choice"] = parsed.tool_choice
    elif parsed.tool_choice not in (None, "none", "auto"):
        raise ValueError("tool_choice needs tools: send the tools the model may call.")
    if (response_format := response_format_binding(parsed.response_format)) is not None:
        kwargs["response_format"] = response_format
    max_tokens = parsed.max_completion_tokens or parsed.max_tokens
    values = {"max_tokens": max_tokens, "temperature": parsed.temperature, "top_p": parsed.top_p,
              "seed": parsed.seed, "lora_scale": parsed.lora_scale, "num_beams": parsed.num_beams,
              "repetition_penalty": parsed.repetition_penalty}
    kwargs.update({k: v for k, v in values.items() if v is not None})
    if parsed.stop is not None:
        kwargs["stop"] = [parsed.stop] if isinstance(parsed.stop, str) else list(parsed.stop)
    return kwargs


async def _until_disconnect(request: Request, work: Awaitable[Any]) -> Any:
    """Await ``work``; cancel it (and so its generation) when the client goes away."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=0.1)
        if done:
            return _result(task)
        if await request.is_disconnected():
            task.cancel()
            raise APIError(499, "The client disconnected; generation was cancelled.")


def _result(task: asyncio.Future) -> Any:
    try:
        return task.result()
    except ToolCallError as err:
        raise APIError(422, str(err), code="tool_call_failed") from None
    except GenerationTimeout as err:
        raise APIError(504, str(err), kind="server_error", code="timeout") from None
    except PromptTooLongError as err:
        raise APIError(400, str(err), code="context_length_exceeded") from None
    except (ContentBlockError, SalmonnError, ValueError) as err:
        raise APIError(400, str(err)) from None


async def _stream(state: ServerState, chat: ChatSALMONN, messages: list[Any], kwargs: dict[str, Any],
                  include_usage: bool) -> AsyncIterator[bytes]:
    """Server-Sent Events of one streamed answer; closing the generator cancels generation."""
    completion_id, model = new_completion_id(), chat.model_name
    try:
        yield _event(chunk(completion_id, model, {"role": "assistant", "content": ""}))
        last = None
        async for piece in chat.astream(messages, **kwargs):
            last = piece if last is None else last + piece
            if piece.content:
                yield _event(chunk(completion_id, model, {"content": str(piece.content)}))
            deltas = tool_call_deltas(piece.tool_call_chunks) if piece.tool_call_chunks else []
            if deltas:  # a call streams as it is decoded, OpenAI's way
                yield _event(chunk(completion_id, model, {"tool_calls": deltas}))
        if last is not None:
            yield _event(chunk(completion_id, model, {}, finish=finish_reason(last)))
            if include_usage:
                yield _event(chunk(completion_id, model, {}, usage_body=usage(last), with_choice=False))
    except (ToolCallError, GenerationTimeout, ContentBlockError, SalmonnError, ValueError) as err:
        yield _event(error_body(str(err), "invalid_request_error" if isinstance(err, ValueError) else "server_error"))
    finally:
        state.requests.release()
    yield b"data: [DONE]\n\n"


def _event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


class _ReplicaHeader:
    """Every response names the process that answered (``x-salmonn-replica``: host and pid), so that
    a client behind Ray Serve's proxy can tell the replicas apart. Pure ASGI: Starlette's
    ``BaseHTTPMiddleware`` would hide client disconnects from the routes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.name = f"{socket.gethostname()}:{os.getpid()}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), (b"x-salmonn-replica", self.name)])
            await send(message)

        await self.app(scope, receive, named if scope["type"] == "http" else send)


class _ErrorsMiddleware:
    """Unexpected exceptions become a 500 in OpenAI's format (logged with their traceback)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracked = _StartTracker(send)
        try:
            await self.app(scope, receive, tracked)
        except _BodyTooLarge:
            raise
        except Exception as err:  # noqa: BLE001 - the client gets a JSON error, the log the traceback
            logger.exception("request failed")
            if scope["type"] == "http" and not tracked.started:
                response = APIError(500, f"Internal error: {type(err).__name__}: {err}", kind="server_error").response()
                await response(scope, receive, send)

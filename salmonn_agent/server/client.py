"""A small client of ``salmonn-agent serve`` for the CLI (``ask --server``).

Written on the standard library alone (``urllib``), so that asking a warm server costs the
client no PyTorch, transformers or LangChain import: the answer comes back within the time of
one HTTP request.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from salmonn_agent.errors import SalmonnError

AUDIO_FORMATS = {".wav": "wav", ".wave": "wav", ".mp3": "mp3", ".flac": "flac", ".ogg": "ogg",
                 ".oga": "ogg", ".opus": "ogg", ".aiff": "aiff", ".aif": "aiff"}
"""File extensions → the ``input_audio`` format sent."""


class ServerError(SalmonnError):
    """The server could not be reached or refused the request; the message says why."""


def chat_request(audio: str | Path, instruction: str, options: dict[str, Any], stream: bool) -> dict[str, Any]:
    """The chat-completions body asking ``instruction`` about the audio file."""
    path = Path(audio)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ServerError(f"cannot read {str(path)!r}: {err.strerror or err}") from None
    if not data:
        raise ServerError(f"{str(path)!r} is empty; give an audio file.")
    audio_format = AUDIO_FORMATS.get(path.suffix.lower(), "wav")
    body: dict[str, Any] = {
        "model": "salmonn",
        "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode(), "format": audio_format}},
            {"type": "text", "text": instruction},
        ]}],
        "stream": stream,
    }
    body.update({k: v for k, v in options.items() if v is not None})
    return body


def ask(server: str, body: dict[str, Any], api_key: str | None, timeout: float = 600.0) -> Iterator[str]:
    """Send ``body`` to ``server`` (its base URL, with or without ``/v1``); yield the answer's text
    (in pieces when ``body["stream"]``)."""
    url = server.rstrip("/")
    url = url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - the user's own server URL
    except urllib.error.HTTPError as err:
        raise ServerError(f"the server at {server} answered {err.code}: {_error_message(err.read())}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ServerError(f"cannot reach the server at {server} ({reason}); start one with "
                          "`salmonn-agent serve`, or check --server / $SALMONN_AGENT_SERVER.") from None
    with response:
        if not body.get("stream"):
            answer = json.loads(response.read())
            message = answer["choices"][0]["message"]
            if message.get("tool_calls"):
                yield json.dumps([call["function"] for call in message["tool_calls"]], ensure_ascii=False)
            else:
                yield message.get("content") or ""
            return
        for raw in response:
            line = raw.decode("utf-8").strip()
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                return
            event = json.loads(payload)
            if "error" in event:
                raise ServerError(f"the server stopped the answer: {event['error'].get('message')}")
            for choice in event.get("choices", []):
                if piece := (choice.get("delta") or {}).get("content"):
                    yield piece


def _error_message(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return raw.decode("utf-8", "replace")[:300] or "no details"

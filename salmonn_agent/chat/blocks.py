"""LangChain content blocks → text pieces and audio clips, with clear errors for bad blocks.

Accepted audio blocks (``message.content_blocks`` normalises the legacy and OpenAI forms first):

* ``{"type": "audio", "base64": ..., "mime_type": "audio/wav"}`` (LangChain v1);
* ``{"type": "audio", "url": ...}``: a local path, a ``file://`` URL, a ``data:`` URL, or an
  ``http(s)://`` URL when remote audio is explicitly allowed;
* ``{"type": "audio", "source_type": "base64", "data": ...}`` (legacy) and
  ``{"type": "input_audio", "input_audio": {"data": ..., "format": "wav"}}`` (OpenAI).

Every clip is keyed by a hash of its encoded bytes, so the same clip sent twice (two turns
of one conversation) is recognised without decoding it again. A block with an unsupported
MIME type, undecodable bytes, or more bytes than the configured limit raises
:class:`ContentBlockError` naming the message and the block.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.messages import BaseMessage

from salmonn_agent.chat.errors import ContentBlockError
from salmonn_agent.audio import base64_size, read_capped, split_data_uri
from salmonn_agent.errors import AudioError

SUPPORTED_MIME_TYPES = frozenset({
    "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/flac", "audio/x-flac",
    "audio/ogg", "audio/opus", "audio/mpeg", "audio/mp3", "audio/x-mp3", "audio/aiff",
    "audio/x-aiff", "application/octet-stream",
})
"""MIME types whose bytes libsndfile decodes (octet-stream: the format is read from the bytes)."""

_IGNORED_BLOCKS = frozenset({
    "reasoning", "tool_call", "tool_call_chunk", "invalid_tool_call", "server_tool_call",
    "server_tool_call_chunk", "server_tool_result",
})
"""Block types that carry no input for SALMONN (tool calls travel in ``message.tool_calls``)."""


@dataclass
class AudioClip:
    """One audio clip of a conversation: a content key and a way to decode it (on demand)."""

    key: str
    where: str
    loader: Callable[[], np.ndarray] = field(repr=False)
    _samples: np.ndarray | None = field(default=None, repr=False)

    def load(self) -> np.ndarray:
        """16 kHz mono samples (decoded once); raises :class:`ContentBlockError` naming the block."""
        if self._samples is None:
            try:
                self._samples = self.loader()
            except AudioError as err:
                raise ContentBlockError(f"{self.where}: {err}") from None
        return self._samples


@dataclass
class MessageParts:
    """What one message contributes: its text pieces and its audio clips, in order."""

    texts: list[str] = field(default_factory=list)
    clips: list[AudioClip] = field(default_factory=list)


class BlockReader:
    """Reads messages into :class:`MessageParts`.

    ``load`` decodes bytes into 16 kHz mono samples (``SALMONN.load``); ``max_bytes`` bounds one
    clip's encoded size; ``allow_remote`` permits ``http(s)`` URLs (off by default: a message
    should not make the process fetch arbitrary addresses); ``local_audio`` says which local
    paths (plain or ``file://``) may be read: ``True`` any, ``False`` none (messages from a network
    client), or only files inside the given directories. A refused path gets the same error whether
    or not it exists, so a message cannot probe the file system.
    """

    def __init__(
        self,
        load: Callable[[bytes], np.ndarray],
        *,
        max_bytes: int,
        allow_remote: bool = False,
        remote_timeout: float = 30.0,
        local_audio: bool | Sequence[str | Path] = True,
    ) -> None:
        self._load = load
        self.max_bytes = max_bytes
        self.allow_remote = allow_remote
        self.remote_timeout = remote_timeout
        self.local_audio: bool | list[Path] = (
            local_audio if isinstance(local_audio, bool)
            else [Path(d).expanduser().resolve() for d in local_audio]
        )

    def read(self, message: BaseMessage, index: int) -> MessageParts:
        """Text and audio of ``message`` (``index`` is its position, used in error messages)."""
        parts = MessageParts()
        role = type(message).__name__
        for number, block in enumerate(message.content_blocks):
            where = f"messages[{index}] ({role}), content block {number} ({_describe(block)})"
            kind = block.get("type")
            if kind == "text":
                parts.texts.append(str(block.get("text", "")))
            elif kind == "audio":
                parts.clips.append(self._clip(block, where))
            elif kind in _IGNORED_BLOCKS:
                continue
            elif kind == "non_standard" and _is_tool_use(block):
                continue
            else:
                raise ContentBlockError(
                    f"{where}: SALMONN hears audio and reads text; {kind!r} blocks are not "
                    "supported. Send audio as {'type': 'audio', 'base64': ..., 'mime_type': "
                    "'audio/wav'} or a local path/URL, and text as text blocks."
                )
        return parts

    # ------------------------------------------------------------------ sources
    def _clip(self, block: dict[str, Any], where: str) -> AudioClip:
        mime = block.get("mime_type")
        if mime is not None:
            _check_mime(str(mime), where)
        if block.get("base64") is not None:
            payload = self._from_base64(str(block["base64"]), where)
        elif block.get("url") is not None:
            payload = self._from_url(str(block["url"]), where)
        elif block.get("file_id") is not None:
            raise ContentBlockError(
                f"{where}: file_id refers to a file uploaded to a provider; SALMONN runs locally. "
                "Send the audio as base64 or as a local path / file:// URL."
            )
        else:
            raise ContentBlockError(
                f"{where}: the audio block has no data; give 'base64' (with 'mime_type') or 'url'."
            )
        key = hashlib.blake2b(payload, digest_size=16).hexdigest()
        return AudioClip(key=key, where=where, loader=lambda: self._load(payload))

    def _from_base64(self, data: str, where: str) -> bytes:
        if base64_size(data) > self.max_bytes:
            raise self._too_large(where, base64_size(data))
        try:
            payload = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as err:
            raise ContentBlockError(f"{where}: the base64 data does not decode ({err}).") from None
        if not payload:
            raise ContentBlockError(f"{where}: the audio data is empty.")
        if len(payload) > self.max_bytes:
            raise self._too_large(where, len(payload))
        return payload

    def _from_url(self, url: str, where: str) -> bytes:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme == "data":
            parts = split_data_uri(url)
            if parts is None:
                raise ContentBlockError(f"{where}: only base64 data: URLs are supported.")
            mime, data = parts
            if mime:
                _check_mime(mime, where)
            return self._from_base64(data, where)
        if parsed.scheme in ("http", "https"):
            if not self.allow_remote:
                raise ContentBlockError(
                    f"{where}: remote audio URLs are off. Download the file and send it as "
                    "base64 or a local path, or build the model with allow_remote_audio=True."
                )
            return self._download(url, where)
        if parsed.scheme == "file":
            path = Path(urllib.request.url2pathname(parsed.path))
        elif parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
            path = Path(url).expanduser()
        else:
            raise ContentBlockError(
                f"{where}: unsupported URL scheme {parsed.scheme!r}; use a local path, file://, "
                "data: or (when allowed) http(s)://."
            )
        return self._read_file(self._allowed_path(path, where), where)

    def _allowed_path(self, path: Path, where: str) -> Path:
        if self.local_audio is True:
            return path
        if self.local_audio is False:
            raise ContentBlockError(
                f"{where}: local audio paths are off here; send the audio itself as base64 "
                "(OpenAI's input_audio or {'type': 'audio', 'base64': ..., 'mime_type': 'audio/wav'})."
            )
        resolved = path.resolve()
        if not any(resolved.is_relative_to(directory) for directory in self.local_audio):
            raise ContentBlockError(
                f"{where}: {str(path)!r} is outside the directories audio may be read from "
                f"({', '.join(map(str, self.local_audio))}); copy the file there or send it as base64."
            )
        return resolved

    def _read_file(self, path: Path, where: str) -> bytes:
        if not path.is_file():
            raise ContentBlockError(f"{where}: audio file not found: {str(path)!r}.")
        size = path.stat().st_size
        if size > self.max_bytes:
            raise self._too_large(where, size)
        payload = read_capped(path, self.max_bytes)
        if len(payload) > self.max_bytes:
            raise self._too_large(where, len(payload))
        return payload

    def _download(self, url: str, where: str) -> bytes:
        try:
            with urllib.request.urlopen(url, timeout=self.remote_timeout) as response:  # noqa: S310
                payload = response.read(self.max_bytes + 1)
        except OSError as err:
            raise ContentBlockError(f"{where}: could not download {url!r} ({err}).") from None
        if len(payload) > self.max_bytes:
            raise self._too_large(where, len(payload))
        return payload

    def _too_large(self, where: str, size: int) -> ContentBlockError:
        return ContentBlockError(
            f"{where}: the audio is {size / 1e6:.1f} MB, over the limit of "
            f"{self.max_bytes / 1e6:.1f} MB; send a shorter or compressed clip, or raise "
            "max_audio_bytes."
        )


def _check_mime(mime: str, where: str) -> None:
    base = mime.split(";")[0].strip().lower()
    if base not in SUPPORTED_MIME_TYPES:
        raise ContentBlockError(
            f"{where}: unsupported MIME type {mime!r}. SALMONN decodes WAV, FLAC, OGG, MP3 and "
            "AIFF (audio/wav, audio/flac, audio/ogg, audio/mpeg, audio/aiff); convert other "
            "formats first, e.g. `ffmpeg -i INPUT -ar 16000 -ac 1 out.wav`."
        )


def _describe(block: dict[str, Any]) -> str:
    kind = str(block.get("type"))
    if kind == "non_standard" and isinstance(block.get("value"), dict):
        kind = f"non_standard {block['value'].get('type')!r}"
    mime = block.get("mime_type")
    return f"type {kind!r}" + (f", mime_type {mime!r}" if mime else "")


def _is_tool_use(block: dict[str, Any]) -> bool:
    value = block.get("value")
    return isinstance(value, dict) and value.get("type") in ("tool_use", "function_call")

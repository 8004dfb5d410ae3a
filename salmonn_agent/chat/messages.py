"""Build LangChain messages that carry audio: from a path, file bytes, a sample array, or a
front-end window (anything with ``samples`` and ``sample_rate``, such as ``AudioWindow``)."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import soundfile as sf
from langchain_core.messages import HumanMessage

from salmonn_agent.chat.errors import ContentBlockError

TRANSCRIPTS_KEY = "transcripts"
"""``response_metadata`` key under which a brain reports what Whisper heard in each of the
request's clips (ChatSALMONN with a model that reads it, as salmonn-mini does)."""

_FORMAT_MIME = {
    "WAV": "audio/wav", "WAVEX": "audio/wav", "FLAC": "audio/flac", "OGG": "audio/ogg",
    "MP3": "audio/mpeg", "AIFF": "audio/aiff",
}


@runtime_checkable
class SampleWindow(Protocol):
    """Duck type of a front-end window: float samples and their rate."""

    samples: np.ndarray
    sample_rate: int


def audio_block(
    audio: str | os.PathLike | bytes | bytearray | np.ndarray | SampleWindow,
    *,
    sample_rate: int | None = None,
    mime_type: str | None = None,
) -> dict[str, Any]:
    """A standard LangChain audio content block.

    A path becomes a ``file://`` URL block (the file is read when the model runs); bytes of an
    audio file become a base64 block (MIME type from ``mime_type`` or sniffed from the bytes);
    an array (with ``sample_rate``) or a window becomes a lossless float WAV, base64.
    """
    if isinstance(audio, (str, os.PathLike)):
        path = Path(audio).expanduser().resolve()
        if not path.is_file():
            raise ContentBlockError(f"Audio file not found: {str(path)!r}.")
        return {"type": "audio", "url": path.as_uri()}
    if isinstance(audio, (bytes, bytearray)):
        data = bytes(audio)
        return {"type": "audio", "base64": base64.b64encode(data).decode("ascii"),
                "mime_type": mime_type or _sniff_mime(data)}
    if isinstance(audio, SampleWindow) and not isinstance(audio, np.ndarray):
        return audio_block(np.asarray(audio.samples), sample_rate=int(audio.sample_rate))
    if isinstance(audio, np.ndarray):
        if sample_rate is None:
            raise ContentBlockError("A sample array needs its sample rate: pass sample_rate=...")
        buffer = io.BytesIO()
        sf.write(buffer, np.asarray(audio, dtype=np.float32), int(sample_rate), format="WAV", subtype="FLOAT")
        return audio_block(buffer.getvalue(), mime_type="audio/wav")
    raise ContentBlockError(
        f"Cannot make an audio block from {type(audio).__name__}: pass a path, file bytes, a "
        "numpy array with sample_rate, or a window with samples and sample_rate."
    )


def audio_message(
    audio: str | os.PathLike | bytes | bytearray | np.ndarray | SampleWindow,
    text: str | None = None,
    *,
    sample_rate: int | None = None,
    mime_type: str | None = None,
) -> HumanMessage:
    """A ``HumanMessage`` with the audio first and then ``text`` (SALMONN's trained order)."""
    content: list[str | dict[str, Any]] = [audio_block(audio, sample_rate=sample_rate, mime_type=mime_type)]
    if text:
        content.append({"type": "text", "text": text})
    return HumanMessage(content=content)


def _sniff_mime(data: bytes) -> str:
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        return "application/octet-stream"
    return _FORMAT_MIME.get(info.format, "application/octet-stream")

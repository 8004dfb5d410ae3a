"""Audio references an agent can pass to the hearing tools, and where they are resolved.

An LLM cannot hand a tool a numpy array, so the hearing tools take audio as one string, a
*reference*, which :class:`AudioResolver` turns into 16 kHz mono samples. The rules, checked
in this order (the first that matches wins):

1. ``data:<mime>;base64,<data>``: a data URI holding a base64-encoded audio file;
2. ``base64:<data>``: a base64-encoded audio file;
3. ``w<N>`` or ``window:w<N>`` (e.g. ``w12``): a recent window kept by a :class:`WindowStore`;
4. raw base64 with no prefix: at least 64 characters, only base64 characters (standard or
   URL-safe alphabet, line breaks allowed), and the first bytes decode to the header of a WAV
   (``RIFF``), FLAC (``fLaC``), OGG (``OggS``), AIFF (``FORM``) or ID3-tagged MP3 (``ID3``)
   file. Anything else needs the ``base64:`` prefix;
5. anything else is a file path, relative to the allowed directory (absolute paths must lie
   inside it). A file whose name looks like a window id is reached as ``./w12``.

Every rejection raises :class:`AudioRefError` with a message an agent can act on: path
traversal (``..``, absolute paths or symlinks leading out of the allowed directory), payloads
over ``max_bytes`` (base64 is measured *before* it is decoded), unknown or evicted window ids
(the message lists the ids that are kept), and data that is not audio.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from salmonn_agent.audio import SAMPLE_RATE, base64_size, load_audio, prepare_samples, read_capped, split_data_uri
from salmonn_agent.errors import AudioError, ConfigError, SalmonnError
from salmonn_agent.stream.windows import AudioWindow

_WINDOW_ID = re.compile(r"^(?:window:)?(w\d+)$", re.IGNORECASE)
_BASE64_CHARS = re.compile(r"^[A-Za-z0-9+/=_\-\s]+$")
_RAW_BASE64_MIN_CHARS = 64
_AUDIO_MAGIC = (b"RIFF", b"fLaC", b"OggS", b"FORM", b"ID3")

RefKind = Literal["window", "base64", "path"]
"""Which form of reference an audio came from."""


class AudioRefError(SalmonnError, ValueError):
    """An audio reference that cannot be used: unknown window, path outside the allowed
    directory, oversized or undecodable data. The message names the problem and the fix."""


class WindowStore:
    """The most recent front-end windows, by id (``w1``, ``w2``, ... in the order added).

    Bounded: adding a window beyond ``max_windows`` forgets the oldest. Thread-safe, so the
    runtime can add windows from its listening thread while tools read from another.
    """

    def __init__(self, max_windows: int = 32) -> None:
        if max_windows < 1:
            raise ConfigError(f"max_windows must be at least 1, got {max_windows}.")
        self.max_windows = max_windows
        self._windows: OrderedDict[str, AudioWindow] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()

    def add(self, window: AudioWindow) -> str:
        """Keep ``window`` and return its new id; the oldest window goes when the store is full."""
        with self._lock:
            self._count += 1
            window_id = f"w{self._count}"
            self._windows[window_id] = window
            while len(self._windows) > self.max_windows:
                self._windows.popitem(last=False)
            return window_id

    def get(self, window_id: str) -> AudioWindow:
        """The window with this id (``w3`` or ``window:w3``), or :class:`AudioRefError`."""
        key = _normalize_id(window_id)
        with self._lock:
            window = self._windows.get(key) if key else None
            if window is not None:
                return window
            recent, count = list(self._windows), self._count
        kept = f"the windows kept now are {', '.join(recent)}" if recent else "no window has been recorded yet"
        if key and 1 <= int(key[1:]) <= count:
            raise AudioRefError(
                f"Window {key!r} is no longer kept (only the last {self.max_windows} windows are); "
                f"{kept}. Use one of those, or listen again."
            )
        raise AudioRefError(f"There is no window {window_id!r}: {kept}. Use one of those ids.")

    def recent(self) -> list[str]:
        """The ids of the kept windows, oldest first (the last one is the newest)."""
        with self._lock:
            return list(self._windows)

    def summary(self, window_id: str) -> dict[str, Any]:
        """:func:`window_summary` of a kept window (for logs)."""
        return window_summary(self.get(window_id), _normalize_id(window_id))

    def __len__(self) -> int:
        with self._lock:
            return len(self._windows)

    def __contains__(self, window_id: object) -> bool:
        key = _normalize_id(window_id) if isinstance(window_id, str) else None
        with self._lock:
            return key in self._windows


def window_summary(window: AudioWindow, window_id: str | None = None) -> dict[str, Any]:
    """``{"id", "index", "kind", "start", "end", "duration"}`` of a window, for logs and the audit."""
    return {
        "id": window_id, "index": window.index, "kind": window.kind,
        "start": round(window.start, 3), "end": round(window.end, 3), "duration": round(window.duration, 3),
    }


@dataclass(frozen=True, slots=True)
class ResolvedAudio:
    """Audio a reference pointed to: 16 kHz mono float32 ``samples`` and a short description.

    A frozen dataclass, like :class:`~salmonn_agent.stream.windows.AudioWindow`, because it
    carries a numpy array that pydantic could not check anyway.
    """

    samples: np.ndarray
    description: str
    kind: RefKind
    window_id: str | None = None

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples.size / SAMPLE_RATE


class AudioResolver:
    """Turns audio references (see the module docstring for the rules) into samples.

    ``allowed_dir``: the only directory paths may point into (None refuses every path);
    ``store``: where window ids are looked up (None refuses window ids); ``max_bytes``: the
    largest file or decoded base64 payload accepted.
    """

    def __init__(
        self,
        allowed_dir: str | Path | None = None,
        store: WindowStore | None = None,
        max_bytes: int = 10_000_000,
    ) -> None:
        if max_bytes < 1:
            raise ConfigError(f"max_bytes must be positive, got {max_bytes}.")
        self.allowed_dir: Path | None = None
        if allowed_dir is not None:
            root = Path(allowed_dir).expanduser().resolve()
            if not root.is_dir():
                raise ConfigError(
                    f"The allowed audio directory {str(root)!r} does not exist or is not a "
                    "directory: create it or point allowed_dir at an existing one."
                )
            self.allowed_dir = root
        self.store = store
        self.max_bytes = max_bytes

    def resolve(self, ref: str) -> ResolvedAudio:
        """The audio ``ref`` names, as 16 kHz mono samples, or :class:`AudioRefError`."""
        if not isinstance(ref, str) or not ref.strip():
            raise AudioRefError(
                "No audio given: pass a window id such as 'w3', a file path inside the audio "
                "folder, or 'base64:<data>' / 'data:audio/wav;base64,<data>'."
            )
        ref = ref.strip()
        if ref[:5].lower() == "data:":
            return self._from_base64(_data_uri_payload(ref), "data URI")
        if ref[:7].lower() == "base64:":
            return self._from_base64(ref[7:], "base64 audio")
        if _WINDOW_ID.match(ref) or ref[:7].lower() == "window:":
            return self._from_window(ref)
        if _looks_like_raw_base64(ref):
            return self._from_base64(ref, "base64 audio")
        return self._from_path(ref)

    # ---------------------------------------------------------------- the three forms

    def _from_window(self, ref: str) -> ResolvedAudio:
        if self.store is None:
            raise AudioRefError(
                f"{ref!r} looks like a window id, but no recent windows are kept here: pass "
                "a file path or base64 audio instead."
            )
        if not _WINDOW_ID.match(ref):
            raise AudioRefError(f"{ref!r} is not a window id: window ids look like 'w3' or 'window:w3'.")
        window = self.store.get(ref)
        window_id = _normalize_id(ref)
        samples = prepare_samples(np.asarray(window.samples), int(window.sample_rate))
        return ResolvedAudio(
            samples=samples,
            description=f"window {window_id} ({window.kind}, {window.start:.2f}-{window.end:.2f} s)",
            kind="window",
            window_id=window_id,
        )

    def _from_base64(self, payload: str, what: str) -> ResolvedAudio:
        # The decoded size is known from the length: check it before decoding anything.
        estimate = base64_size(payload)
        if estimate > self.max_bytes:
            raise AudioRefError(
                f"The {what} holds about {estimate:,} bytes, over the limit of {self.max_bytes:,}: "
                "send a shorter clip (a few seconds of 16 kHz mono WAV or FLAC is plenty)."
            )
        try:
            data = base64.b64decode(_std_alphabet(payload), validate=True)
        except (binascii.Error, ValueError):
            raise AudioRefError(
                f"The {what} is not valid base64: encode the bytes of an audio file with "
                "standard base64 (e.g. `base64 -w0 clip.wav`)."
            ) from None
        samples = self._decode(data, f"the {what}")
        return ResolvedAudio(samples=samples, description=f"{what} ({samples.size / SAMPLE_RATE:.1f} s)", kind="base64")

    def _from_path(self, ref: str) -> ResolvedAudio:
        root = self.allowed_dir
        if root is None:
            raise AudioRefError(
                f"{ref!r} is read as a file path, but reading audio files is not enabled: "
                "configure an allowed audio directory (AudioResolver(allowed_dir=...)), or pass "
                "a window id such as 'w3' or base64 audio ('base64:<data>')."
            )
        given = Path(ref)
        try:
            path = (given if given.is_absolute() else root / given).resolve()
        except (OSError, ValueError, RuntimeError) as err:  # a NUL byte, a symlink loop...
            raise AudioRefError(f"{ref!r} is not a usable file path ({err}): give the name of an audio file.") from None
        if not path.is_relative_to(root):  # resolve() followed every symlink and `..`
            raise AudioRefError(
                f"{ref!r} is outside the allowed audio directory {str(root)!r}: give a path "
                "inside it (relative paths are taken from there)."
            )
        shown = str(path.relative_to(root)) or "."
        if not path.exists():
            raise AudioRefError(f"There is no file {shown!r} in the audio directory {str(root)!r}: check the name.")
        if not path.is_file():
            raise AudioRefError(f"{shown!r} in the audio directory is not a regular file: give an audio file.")
        size = path.stat().st_size
        if size > self.max_bytes:
            raise AudioRefError(
                f"{shown!r} is {size:,} bytes, over the limit of {self.max_bytes:,}: use a "
                "shorter clip or a compressed format (FLAC, OGG)."
            )
        try:
            data = read_capped(path, self.max_bytes)
        except OSError as err:
            raise AudioRefError(f"{shown!r} could not be read ({err.strerror}): check its permissions.") from None
        if len(data) > self.max_bytes:
            raise AudioRefError(f"{shown!r} is over the limit of {self.max_bytes:,} bytes: use a shorter clip.")
        samples = self._decode(data, repr(shown))
        return ResolvedAudio(samples=samples, description=f"file {shown!r} ({samples.size / SAMPLE_RATE:.1f} s)", kind="path")

    @staticmethod
    def _decode(data: bytes, what: str) -> np.ndarray:
        try:
            return load_audio(data)
        except AudioError as err:
            raise AudioRefError(f"{what[0].upper()}{what[1:]} is not usable audio: {err}") from None


def _normalize_id(window_id: str) -> str | None:
    match = _WINDOW_ID.match(window_id.strip())
    return match.group(1).lower() if match else None


def _data_uri_payload(ref: str) -> str:
    parts = split_data_uri(ref)
    if parts is None:
        raise AudioRefError(
            "Only base64 data URIs are accepted: write 'data:audio/wav;base64,<data>' "
            "(the header must end in ';base64' followed by a comma)."
        )
    return parts[1]


def _std_alphabet(payload: str) -> str:
    compact = "".join(payload.split())
    return compact.replace("-", "+").replace("_", "/")  # URL-safe base64 → standard


def _looks_like_raw_base64(ref: str) -> bool:
    if len(ref) < _RAW_BASE64_MIN_CHARS or not _BASE64_CHARS.match(ref):
        return False
    try:
        head = base64.b64decode(_std_alphabet(ref[:64])[:16], validate=True)
    except (binascii.Error, ValueError):
        return False
    return head.startswith(_AUDIO_MAGIC)

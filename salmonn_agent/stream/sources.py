"""Where audio comes from: a microphone, a file, an array or any iterator of chunks.

Every source yields :class:`AudioChunk` s of 16 kHz mono float32 samples, each stamped with
its position in the stream (``start_sample``), so a hole in the input (a microphone queue
that overflowed) shows as a jump. A source may yield an empty chunk as a heartbeat when no
audio arrived for a while; the :class:`~salmonn_agent.stream.listener.Listener` uses those
for its stall watchdog. Sources are context managers; ``stop()`` may be called from any
thread and ends the iteration promptly.

``sounddevice`` (and with it PortAudio) is imported only when a microphone is opened.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel

from salmonn_agent.audio import (
    SAMPLE_RATE,
    StreamResampler,
    load_audio,
    prepare_samples,
    to_mono,
)
from salmonn_agent.stream.errors import FrontendError

_HEARTBEAT_S = 0.1


class AudioChunk(NamedTuple):
    """16 kHz mono float32 ``samples`` starting at ``start_sample`` of the stream."""

    samples: np.ndarray
    start_sample: int


class Source:
    """Base class: ``start()``, iterate for chunks, ``stop()``/``close()``; a context manager."""

    sample_rate: int = SAMPLE_RATE

    def __init__(self) -> None:
        self._stop_event = threading.Event()
        self._started = False

    @property
    def overflows(self) -> int:
        """Blocks of audio lost because the consumer was too slow (0 for offline sources)."""
        return 0

    @property
    def dropped_samples(self) -> int:
        """Samples (16 kHz) lost to overflows."""
        return 0

    def start(self) -> None:
        """Open the source (idempotent)."""
        self._started = True

    def stop(self) -> None:
        """Stop producing audio; an iteration in progress ends soon after (any thread)."""
        self._stop_event.set()

    def close(self) -> None:
        """Stop and release the device or file (idempotent)."""
        self.stop()

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop_event.is_set()

    def chunks(self) -> Iterator[AudioChunk]:
        """Yield the audio until the source ends or is stopped."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[AudioChunk]:
        if not self._started:
            self.start()
        return self.chunks()

    def __enter__(self) -> "Source":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ArraySource(Source):
    """Replays an array, as fast as possible or in real time (``realtime=True``).

    ``chunk_ms`` is the chunk length: 30 ms by default in real time (like a microphone),
    4 s otherwise (fewer, larger pushes are faster to segment). ``speed`` scales real time.
    """

    def __init__(
        self,
        samples: np.ndarray,
        sample_rate: int = SAMPLE_RATE,
        *,
        realtime: bool = False,
        chunk_ms: int | None = None,
        speed: float = 1.0,
    ) -> None:
        super().__init__()
        if speed <= 0:
            raise FrontendError(f"speed must be positive, got {speed}.")
        self._raw: tuple[np.ndarray, int] | None = (samples, sample_rate)
        self._samples: np.ndarray | None = None
        self.realtime = realtime
        self.speed = speed
        ms = chunk_ms if chunk_ms is not None else (30 if realtime else 4000)
        if ms <= 0:
            raise FrontendError(f"chunk_ms must be positive, got {ms}.")
        self.chunk = max(1, ms * SAMPLE_RATE // 1000)

    def _load(self) -> np.ndarray:
        assert self._raw is not None
        return prepare_samples(*self._raw)

    @property
    def samples(self) -> np.ndarray:
        """The whole input as 16 kHz mono float32 (decoded on first use)."""
        if self._samples is None:
            self._samples = self._load()
            self._raw = None
        return self._samples

    @property
    def duration(self) -> float:
        """Length of the input in seconds."""
        return self.samples.size / SAMPLE_RATE

    def start(self) -> None:
        """Decode the input (errors surface here, not mid-iteration)."""
        _ = self.samples
        super().start()

    def chunks(self) -> Iterator[AudioChunk]:
        x, step = self.samples, self.chunk
        t0 = time.monotonic()
        for a in range(0, x.size, step):
            if self._stop_event.is_set():
                return
            if self.realtime:  # a chunk is available once it has been "recorded"
                due = t0 + min(a + step, x.size) / SAMPLE_RATE / self.speed
                delay = due - time.monotonic()
                if delay > 0 and self._stop_event.wait(delay):
                    return
            yield AudioChunk(x[a : a + step], a)


class FileSource(ArraySource):
    """Replays an audio file (any format :func:`salmonn_agent.audio.load_audio` reads).

    The stand-in for a microphone in tests, CI and demos: ``realtime=True`` paces it like a
    live stream.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        realtime: bool = False,
        chunk_ms: int | None = None,
        speed: float = 1.0,
    ) -> None:
        super().__init__(np.zeros(0), SAMPLE_RATE, realtime=realtime, chunk_ms=chunk_ms, speed=speed)
        self.path = Path(path)

    def _load(self) -> np.ndarray:
        return load_audio(self.path)


class IteratorSource(Source):
    """Wraps any iterable of sample arrays (a generator, a network stream...).

    Chunks may be int or float, mono or ``(frames, channels)``, at ``sample_rate``; they are
    converted to 16 kHz mono float32 (resampled as one continuous stream).
    """

    def __init__(self, chunks: Iterable[np.ndarray], sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__()
        self._chunks = chunks
        self.input_rate = int(sample_rate)
        if self.input_rate <= 0:
            raise FrontendError(f"sample_rate must be positive, got {sample_rate}.")

    def chunks(self) -> Iterator[AudioChunk]:
        resampler = StreamResampler(self.input_rate) if self.input_rate != SAMPLE_RATE else None
        pos = 0
        for raw in self._chunks:
            if self._stop_event.is_set():
                return
            raw = np.asarray(raw)
            if raw.size == 0:
                continue
            x = prepare_samples(raw, SAMPLE_RATE)  # validate, to float, to mono (no resampling)
            if resampler is not None:
                x = resampler(x)
            if x.size:
                yield AudioChunk(x, pos)
                pos += x.size
        if resampler is not None and not self._stop_event.is_set():
            tail = resampler(np.zeros(0, dtype=np.float32), last=True)
            if tail.size:
                yield AudioChunk(tail, pos)


# --------------------------------------------------------------------------- microphone

_PORTAUDIO_FIX = (
    "install the PortAudio library (Debian/Ubuntu: `sudo apt-get install libportaudio2`; "
    "Fedora: `sudo dnf install portaudio`; macOS: `brew install portaudio`), or read audio "
    "from a file instead (`--input FILE`, FileSource)"
)


def _sounddevice() -> Any:
    """Import sounddevice, turning a missing PortAudio into one clear FrontendError."""
    try:
        import sounddevice
    except OSError as err:  # sounddevice raises OSError when libportaudio is missing
        raise FrontendError(f"The microphone needs PortAudio, which was not found ({err}): {_PORTAUDIO_FIX}.") from None
    except ImportError:
        raise FrontendError(
            "The microphone needs the sounddevice package: `pip install sounddevice` "
            f"(and PortAudio: {_PORTAUDIO_FIX})."
        ) from None
    return sounddevice


class InputDevice(BaseModel):
    """An audio input device as PortAudio lists it."""

    index: int
    name: str
    channels: int
    default_samplerate: float
    hostapi: str = ""
    is_default: bool = False


def list_input_devices() -> list[InputDevice]:
    """The input devices PortAudio sees (raises FrontendError without PortAudio)."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
    except Exception as err:  # PortAudioError and friends
        raise FrontendError(f"Could not list audio devices ({err}): check the sound system.") from None
    default = sd.default.device
    default_in = default[0] if isinstance(default, (tuple, list)) else default
    out = []
    for index, dev in enumerate(devices):
        if int(dev.get("max_input_channels", 0)) <= 0:
            continue
        api = dev.get("hostapi")
        api_name = hostapis[api]["name"] if isinstance(api, int) and 0 <= api < len(hostapis) else ""
        out.append(
            InputDevice(
                index=index,
                name=str(dev["name"]),
                channels=int(dev["max_input_channels"]),
                default_samplerate=float(dev.get("default_samplerate", 0.0)),
                hostapi=api_name,
                is_default=(index == default_in),
            )
        )
    return out


_NO_INPUT = (
    "No audio input device found: connect a microphone (in a container, pass the sound "
    "device through, e.g. `docker run --device /dev/snd`), check `salmonn-agent devices`, "
    "or read audio from a file with --input FILE."
)


def _resolve_device(devices: list[InputDevice], device: int | str | None) -> InputDevice:
    if not devices:
        raise FrontendError(_NO_INPUT)
    listing = "; ".join(f"{d.index}: {d.name}" for d in devices)
    if device is None:
        for d in devices:
            if d.is_default:
                return d
        return devices[0]
    if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
        index = int(device)
        for d in devices:
            if d.index == index:
                return d
        raise FrontendError(f"No input device with index {index}. Input devices: {listing}.")
    wanted = str(device).strip().lower()
    exact = [d for d in devices if d.name.lower() == wanted]
    if exact:
        return exact[0]
    matches = [d for d in devices if wanted in d.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise FrontendError(f"No input device matches {device!r}. Input devices: {listing}.")
    names = "; ".join(f"{d.index}: {d.name}" for d in matches)
    raise FrontendError(f"{device!r} matches several input devices ({names}): give its index.")


class MicrophoneSource(Source):
    """Live audio from a microphone through sounddevice/PortAudio.

    The PortAudio callback only copies each block into a bounded queue and never blocks: when
    the consumer falls behind and the queue is full, the block is dropped and counted
    (:attr:`overflows`, :attr:`dropped_samples`), and the next chunk's ``start_sample`` jumps
    past the hole. ``device`` is an index or (part of) a name; None takes the default input.
    The device's native rate (often 44.1 or 48 kHz) is resampled to 16 kHz when it cannot
    record at 16 kHz itself.
    """

    def __init__(
        self,
        device: int | str | None = None,
        *,
        block_ms: int = 30,
        queue_seconds: float = 5.0,
        latency: str | float = "low",
    ) -> None:
        super().__init__()
        if block_ms <= 0 or queue_seconds <= 0:
            raise FrontendError("block_ms and queue_seconds must be positive.")
        self.device = device
        self.block_ms = block_ms
        self.latency = latency
        self._queue: queue.Queue[tuple[int, np.ndarray] | None] = queue.Queue(
            maxsize=max(2, int(queue_seconds * 1000 / block_ms))
        )
        self._stream: Any = None
        self._lock = threading.Lock()
        self._overflows = 0
        self._dropped_frames = 0
        self._pending_gap = 0
        self.input_overflows = 0
        """PortAudio's own input overflows (the system could not keep up)."""
        self.rate = SAMPLE_RATE
        self.device_info: InputDevice | None = None

    @property
    def overflows(self) -> int:
        """Blocks dropped because the queue was full (the consumer was too slow)."""
        return self._overflows

    @property
    def dropped_samples(self) -> int:
        """Audio lost to overflows, in 16 kHz samples."""
        return int(round(self._dropped_frames * SAMPLE_RATE / self.rate))

    def check(self) -> InputDevice:
        """Find the device without opening it (raises FrontendError naming the fix), so that a
        command can fail before it loads a model."""
        self.device_info = _resolve_device(list_input_devices(), self.device)
        return self.device_info

    def start(self) -> None:
        """Open the device and start recording (raises FrontendError naming the fix)."""
        if self._stream is not None:
            return
        sd = _sounddevice()
        info = _resolve_device(list_input_devices(), self.device)
        self.device_info = info
        self.rate = self._pick_rate(sd, info)
        try:
            stream = sd.InputStream(
                device=info.index,
                channels=1,
                samplerate=self.rate,
                blocksize=max(1, self.rate * self.block_ms // 1000),
                dtype="float32",
                latency=self.latency,
                callback=self._callback,
            )
            stream.start()
        except Exception as err:  # PortAudioError: device busy, unplugged, no permission...
            raise FrontendError(
                f"Could not open input device {info.index} ({info.name!r}) at {self.rate} Hz: "
                f"{err}. Check that no other program holds it and that you may record "
                "(e.g. membership of the `audio` group), or pick another with --device."
            ) from None
        self._stream = stream
        self._stop_event.clear()
        super().start()

    @staticmethod
    def _pick_rate(sd: Any, info: InputDevice) -> int:
        try:
            sd.check_input_settings(device=info.index, channels=1, dtype="float32", samplerate=SAMPLE_RATE)
            return SAMPLE_RATE
        except Exception:
            rate = int(info.default_samplerate) or 48_000
            return rate

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # PortAudio's thread: copy and hand over, never block, never raise
        if getattr(status, "input_overflow", False):
            self.input_overflows += 1
        block = np.array(indata[:, 0] if indata.ndim == 2 else indata, dtype=np.float32)
        with self._lock:
            try:
                self._queue.put_nowait((self._pending_gap, block))
                self._pending_gap = 0
            except queue.Full:
                self._overflows += 1
                self._dropped_frames += frames
                self._pending_gap += frames

    def chunks(self) -> Iterator[AudioChunk]:
        if self._stream is None:
            self.start()
        resampler = StreamResampler(self.rate) if self.rate != SAMPLE_RATE else None
        pos = 0
        gap_frac = 0.0
        while True:
            try:
                item = self._queue.get(timeout=_HEARTBEAT_S)
            except queue.Empty:
                if self._stop_event.is_set():
                    return
                yield AudioChunk(np.zeros(0, dtype=np.float32), pos)  # heartbeat
                continue
            if item is None or self._stop_event.is_set():
                return
            gap_frames, block = item
            if gap_frames:
                gap_frac += gap_frames * SAMPLE_RATE / self.rate
                gap = int(gap_frac)
                gap_frac -= gap
                pos += gap
            x = to_mono(block)
            if resampler is not None:
                x = resampler(x)
            if x.size:
                yield AudioChunk(x, pos)
                pos += x.size

    def stop(self) -> None:
        """Stop recording; the PortAudio thread is gone when this returns."""
        super().stop()
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()
        try:
            self._queue.put_nowait(None)  # wake a consumer waiting on the queue
        except queue.Full:
            pass

"""The one place where audio enters salmonn-agent: decode, downmix, resample, validate.

Every model, chat and front-end entry point calls :func:`load_audio` (or :func:`prepare_samples`
for raw arrays), so all of them accept the same inputs and refuse bad audio with the same
clear errors. SALMONN hears 16 kHz mono float32; upstream never resamples and silently
turns wrong-rate audio into garbage, so here every input is resampled with soxr.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Union, overload

import numpy as np
import soundfile as sf

from salmonn_agent.errors import AudioError

SAMPLE_RATE = 16_000
"""The sample rate SALMONN's encoders hear."""

AudioInput = Union[str, os.PathLike, bytes, bytearray, np.ndarray]
"""What :func:`load_audio` accepts: a path, encoded file bytes, or a sample array."""

_MAX_CHANNELS_FIRST = 8  # arrays shaped (channels, frames) are recognised up to this many channels


def load_audio(
    audio: AudioInput,
    sample_rate: int | None = None,
    *,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Return ``audio`` as a 16 kHz mono float32 array, or raise :class:`AudioError`.

    ``audio`` may be a path to any file soundfile reads (WAV, FLAC, OGG, MP3, ...), the bytes
    of such a file, or a numpy array of samples; an array needs ``sample_rate``. 2-D arrays are
    ``(frames, channels)`` as soundfile returns them, or ``(channels, frames)`` with at most
    eight channels. Channels are averaged. ``max_seconds`` bounds the duration (after decoding):
    longer audio is refused, never truncated.
    """
    if isinstance(audio, np.ndarray):
        if sample_rate is None:
            raise AudioError(
                "A numpy array of samples needs its sample rate: pass sample_rate=... "
                "(for example 16000)."
            )
        samples, rate = audio, sample_rate
    elif isinstance(audio, (bytes, bytearray)):
        samples, rate = _decode(io.BytesIO(bytes(audio)), "the given bytes")
    elif isinstance(audio, (str, os.PathLike)):
        path = Path(audio)
        if not path.is_file():
            raise AudioError(f"Audio file not found: {str(path)!r}. Check the path.")
        samples, rate = _decode(path, repr(str(path)))
        if sample_rate is not None and sample_rate != rate:
            raise AudioError(
                f"{str(path)!r} is {rate} Hz but sample_rate={sample_rate} was given; "
                "leave sample_rate out for files (their header says the rate)."
            )
    else:
        raise AudioError(
            f"Unsupported audio input of type {type(audio).__name__}: pass a file path, "
            "the bytes of an audio file, or a numpy array with sample_rate."
        )
    return prepare_samples(samples, rate, max_seconds=max_seconds)


def prepare_samples(
    samples: np.ndarray, sample_rate: int, *, max_seconds: float | None = None
) -> np.ndarray:
    """Validate decoded samples and return them as 16 kHz mono float32.

    Integer samples are scaled to [-1, 1]. Raises :class:`AudioError` for empty, non-finite,
    badly shaped or too long audio, or an invalid sample rate.
    """
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"Invalid sample rate {sample_rate!r}: give a positive integer in Hz.")
    samples = _to_float(np.asarray(samples))
    if samples.size == 0:  # before downmixing: the mean of no frames is NaN
        raise AudioError("The audio is empty (0 samples): give at least a few milliseconds of sound.")
    samples = to_mono(samples)
    if not np.all(np.isfinite(samples)):
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise AudioError(
            f"The audio contains {bad} NaN or infinite samples: fix the source (a failed "
            "conversion or division by zero upstream) before passing it in."
        )
    duration = samples.shape[0] / float(sample_rate)
    if max_seconds is not None and duration > max_seconds:
        raise AudioError(
            f"The audio lasts {duration:.1f} s, over the limit of {max_seconds:.1f} s: "
            "split it, or raise the limit (max_audio_seconds)."
        )
    return resample(samples, int(sample_rate), SAMPLE_RATE)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of a 1-D or 2-D sample array into one channel."""
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise AudioError(
            f"Audio arrays must be 1-D (mono) or 2-D (frames, channels); got shape {samples.shape}."
        )
    frames_first = not (
        samples.shape[0] <= _MAX_CHANNELS_FIRST and samples.shape[1] > samples.shape[0]
    )
    return (samples.mean(axis=1) if frames_first else samples.mean(axis=0)).astype(np.float32)


def resample(samples: np.ndarray, from_rate: int, to_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono float32 array with soxr (high quality); a no-op when the rates match."""
    if from_rate == to_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    import soxr  # imported lazily: only needed for non-16 kHz input

    return soxr.resample(samples.astype(np.float32), from_rate, to_rate, quality="HQ").astype(
        np.float32
    )


class StreamResampler:
    """Resamples consecutive chunks of one stream to 16 kHz (soxr's streaming API).

    :func:`resample` works on whole signals; resampling chunk by chunk with it would click at
    every chunk boundary and drift in length, so live audio keeps the filter state here.
    """

    def __init__(self, from_rate: int) -> None:
        import soxr

        self.from_rate = from_rate
        self._stream = soxr.ResampleStream(from_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")

    def __call__(self, chunk: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample the next mono chunk; ``last=True`` flushes the filter's tail."""
        return self._stream.resample_chunk(np.ascontiguousarray(chunk, dtype=np.float32), last=last)


def split_data_uri(uri: str) -> tuple[str, str] | None:
    """``(mime_type, base64_payload)`` of a ``data:<mime>[;params];base64,<payload>`` URI
    (RFC 2397), or None when it has no comma or does not declare base64."""
    header, sep, payload = uri[5:].partition(",")
    if not sep or not header.lower().endswith(";base64"):
        return None
    return header.split(";")[0], payload


def base64_size(data: str) -> int:
    """How many bytes base64 ``data`` decodes to, known from its length alone (whitespace and
    padding do not count), so an oversized payload is refused before it is decoded."""
    spaces = sum(data.count(c) for c in ("\n", "\r", " ", "\t"))
    return (len(data) - spaces) * 3 // 4 - min(data.count("="), 2)


def read_capped(path: Path, max_bytes: int) -> bytes:
    """The bytes of the file at ``path``, reading at most ``max_bytes + 1``: a caller that
    checked the size first still notices a file that grew since."""
    with path.open("rb") as f:
        return f.read(max_bytes + 1)


@overload
def power_db(power: float) -> float: ...


@overload
def power_db(power: np.ndarray) -> np.ndarray: ...


def power_db(power: float | np.ndarray) -> float | np.ndarray:
    """A mean power (mean square of samples in [-1, 1]) in dB full scale, elementwise for an
    array; silence reads -120 dB instead of minus infinity."""
    if isinstance(power, np.ndarray):
        return 10.0 * np.log10(power + 1e-12)
    return 10.0 * math.log10(power + 1e-12)


def amplitude_db(amplitude: float) -> float:
    """An amplitude (e.g. a peak) in dB full scale; silence reads -180 dB instead of minus infinity."""
    return 20.0 * math.log10(amplitude + 1e-9)


def _to_float(samples: np.ndarray) -> np.ndarray:
    if samples.dtype.kind == "f":
        return samples.astype(np.float32, copy=False)
    if samples.dtype.kind == "i":
        scale = float(2 ** (8 * samples.dtype.itemsize - 1))
        return (samples.astype(np.float32) / scale).astype(np.float32)
    if samples.dtype.kind == "u":
        half = float(2 ** (8 * samples.dtype.itemsize - 1))
        return ((samples.astype(np.float32) - half) / half).astype(np.float32)
    if samples.dtype.kind == "b":
        raise AudioError("Boolean arrays are not audio: pass float or integer samples.")
    raise AudioError(f"Unsupported sample type {samples.dtype}: pass float or integer samples.")


def _decode(source: Path | io.BytesIO, what: str) -> tuple[np.ndarray, int]:
    try:
        samples, rate = sf.read(source, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(
            f"Could not decode {what} as audio ({err}). Use a format libsndfile reads "
            "(WAV, FLAC, OGG/Vorbis, MP3), or convert it first, e.g. "
            "`ffmpeg -i INPUT -ar 16000 -ac 1 out.wav`."
        ) from None
    return samples, int(rate)

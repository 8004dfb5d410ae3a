"""The built-in speech confirmation: speech changes its spectrum, steady sounds do not.

webrtcvad calls nearly every loud periodic or broadband signal speech (tones, chords, hums,
white noise: all 100 % "voiced"). Speech differs in that its spectral shape moves all the
time (formants, voicing on and off) while those sounds keep theirs. The score is the mean
change in spectral shape (dB, averaged over 16 log-spaced bands from 150 Hz to 7 kHz)
between consecutive 60 ms blocks that stand above the noise; band powers are floored at
6 dB over the noise spectrum so the noise's own flicker does not count. Speech scores above
the default threshold (``SegmenterConfig.min_speech_score``), steady tones, chords, hums and
noise below it. Beeping alarms (a tone switched on and off) change their spectrum too and
pass as speech: use confirm_with='yamnet' or 'silero' where that matters. The scores behind
the threshold are in docs/front-end.md.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from salmonn_agent.audio import SAMPLE_RATE

_FRAME = 480  # 30 ms analysis frames, independent of the VAD frame length
_NFFT = 512
_BLOCK = 2  # frames per block: 60 ms
_BANDS = 16
_ACTIVE_MARGIN_DB = 3.0
_NOISE_FLOOR_GAIN_DB = 6.0
_MAX_FRAMES = 32  # longer events are judged on evenly spread stretches (bounded cost)
_STRETCH = 16  # frames per stretch (8 blocks)
_CONTEXT_FRAMES = 6  # noise spectrum from at most 0.18 s before the event
# Band power floor, far below any real noise (a full-scale tone is ~5e4 in its band): after
# digital silence the measured noise is exactly 0, and log10(0) would turn the score into NaN.
_ABS_FLOOR = 1e-6


@lru_cache(maxsize=1)
def _analysis() -> tuple[np.ndarray, np.ndarray]:
    """Hann window (float64: numpy's float32 FFT is several times slower) and band matrix.

    The band matrix applies to the FFT output viewed as interleaved (real, imaginary) pairs,
    so band power is ``(spec_as_floats ** 2) @ bands``.
    """
    freqs = np.fft.rfftfreq(_NFFT, 1.0 / SAMPLE_RATE)
    edges = np.geomspace(150.0, 7000.0, _BANDS + 1)
    bands = np.zeros((freqs.size, _BANDS))
    for i in range(_BANDS):
        bands[(freqs >= edges[i]) & (freqs < edges[i + 1]), i] = 1.0
    bands /= np.maximum(bands.sum(axis=0), 1.0)
    return np.hanning(_FRAME), np.repeat(bands, 2, axis=0)


def _frames(samples: np.ndarray, max_frames: int) -> np.ndarray:
    """30 ms frames; past ``max_frames``, evenly spread stretches of ``_STRETCH`` frames."""
    n = samples.size // _FRAME
    frames = samples[: n * _FRAME].reshape(n, _FRAME)
    if n <= max_frames:
        return frames
    starts = np.linspace(0, n - _STRETCH, max_frames // _STRETCH).astype(int)
    return frames[(starts[:, None] + np.arange(_STRETCH)).reshape(-1)]


def speech_score(event: np.ndarray, floor_db: float, context: np.ndarray | None = None) -> float:
    """Spectral-change score in dB of ``event`` (16 kHz mono); higher is more speech-like.

    ``floor_db`` is the noise floor (dBFS per 30 ms frame); ``context`` is audio just before
    the event from which the noise spectrum is estimated (its frames near the floor). Returns
    0.0 when fewer than two consecutive 60 ms blocks stand above the noise. Events longer
    than about 1 s are judged on evenly spread stretches, so the cost stays bounded.
    """
    event = np.asarray(event, dtype=np.float32)
    stretched = event.size // _FRAME > _MAX_FRAMES
    ev_frames = _frames(event, _MAX_FRAMES)
    n = ev_frames.shape[0] // _BLOCK * _BLOCK
    if n < 2 * _BLOCK:
        return 0.0
    n_ctx = 0
    if context is not None and context.size >= _FRAME:
        n_ctx = min(context.size // _FRAME, _CONTEXT_FRAMES)
        ctx = np.asarray(context[context.size - n_ctx * _FRAME :], dtype=np.float32)
        frames = np.concatenate([ctx.reshape(n_ctx, _FRAME), ev_frames[:n]])
    else:
        frames = ev_frames[:n]
    window, bands = _analysis()
    energy = np.einsum("ij,ij->i", frames, frames)
    gate = _FRAME * 10 ** ((floor_db + _ACTIVE_MARGIN_DB) / 10)  # frame energy of floor+margin
    spec = np.fft.rfft(frames * window, _NFFT).view(np.float64)
    power = (spec * spec) @ bands
    quiet = energy[:n_ctx] <= gate
    if np.count_nonzero(quiet) >= 2:
        noise = power[:n_ctx][quiet].mean(axis=0)
    else:  # no quiet context: the quietest frame of the event per band stands in for the noise
        noise = power[n_ctx:].min(axis=0)
    active = energy[n_ctx:] >= gate
    power = power[n_ctx:]
    b_power = power[0::2] + power[1::2]  # 60 ms blocks (sums of two frames)
    b_active = active[0::2] & active[1::2]
    floor = np.maximum(noise * (2 * 10 ** (_NOISE_FLOOR_GAIN_DB / 10)), _ABS_FLOOR)
    log = np.log10(np.maximum(b_power, floor))
    change = np.abs(np.diff(log - log.mean(axis=1, keepdims=True), axis=0)).mean(axis=1)
    pairs = b_active[1:] & b_active[:-1]
    if stretched:  # no pair across two stretches
        pairs[_STRETCH // _BLOCK - 1 :: _STRETCH // _BLOCK] = False
    if not pairs.any():
        return 0.0
    return 10.0 * float(change[pairs].mean())

"""The built-in speech confirmation: speech changes its spectrum, steady sounds do not.

webrtcvad calls nearly every loud periodic or broadband signal speech (tones, chords, hums,
white noise: all 100 % "voiced"). Speech differs in that its spectral shape moves all the
time (formants, voicing on and off) while those sounds keep theirs. The score is the mean
change in spectral shape (dB, averaged over 16 log-spaced bands from 150 Hz to 7 kHz)
between consecutive 60 ms blocks that stand above the noise; band powers are floored at
6 dB over the noise spectrum so the noise's own flicker does not count. Measured on
espeak-ng voices: speech scores 5-9, speech at 20 dB SNR 3.2-5, steady tones, chords and
hums below 1, white/pink/brown noise about 2.2, sirens and vibrato below 3.
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


@lru_cache(maxsize=1)
def _analysis() -> tuple[np.ndarray, np.ndarray]:
    freqs = np.fft.rfftfreq(_NFFT, 1.0 / SAMPLE_RATE)
    edges = np.geomspace(150.0, 7000.0, _BANDS + 1)
    bands = np.zeros((freqs.size, _BANDS), dtype=np.float32)
    for i in range(_BANDS):
        bands[(freqs >= edges[i]) & (freqs < edges[i + 1]), i] = 1.0
    bands /= np.maximum(bands.sum(axis=0), 1.0)
    return np.hanning(_FRAME).astype(np.float32), bands


def _band_power(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = samples.size // _FRAME
    frames = samples[: n * _FRAME].reshape(n, _FRAME)
    window, bands = _analysis()
    level = 10.0 * np.log10(np.einsum("ij,ij->i", frames, frames) / _FRAME + 1e-12)
    power = (np.abs(np.fft.rfft(frames * window, _NFFT)) ** 2) @ bands
    return level, power


def speech_score(event: np.ndarray, floor_db: float, context: np.ndarray | None = None) -> float:
    """Spectral-change score in dB of ``event`` (16 kHz mono); higher is more speech-like.

    ``floor_db`` is the noise floor (dBFS per 30 ms frame); ``context`` is audio just before
    the event from which the noise spectrum is estimated (its frames near the floor). Returns
    0.0 when fewer than two consecutive 60 ms blocks stand above the noise.
    """
    level, power = _band_power(np.asarray(event, dtype=np.float32))
    if level.size < 2 * _BLOCK:
        return 0.0
    noise = None
    if context is not None and context.size >= _FRAME:
        c_level, c_power = _band_power(np.asarray(context, dtype=np.float32))
        quiet = c_level <= floor_db + _ACTIVE_MARGIN_DB
        if np.count_nonzero(quiet) >= 3:
            noise = np.median(c_power[quiet], axis=0)
    if noise is None:
        noise = np.percentile(power, 10, axis=0)
    active = level >= floor_db + _ACTIVE_MARGIN_DB
    blocks = level.size // _BLOCK
    b_power = power[: blocks * _BLOCK].reshape(blocks, _BLOCK, -1).mean(axis=1)
    b_active = active[: blocks * _BLOCK].reshape(blocks, _BLOCK).all(axis=1)
    log = 10.0 * np.log10(np.maximum(b_power, noise * 10 ** (_NOISE_FLOOR_GAIN_DB / 10)) + 1e-12)
    shape = log - log.mean(axis=1, keepdims=True)
    change = np.abs(np.diff(shape, axis=0)).mean(axis=1)
    pairs = b_active[1:] & b_active[:-1]
    if not pairs.any():
        return 0.0
    return float(change[pairs].mean())

"""Synthetic scenes with known boundaries, for tests, benchmarks and demos of the front-end.

A :class:`SceneBuilder` lays speech clips and sounds end to end over an optional noise floor
and records where each event really is (speech clips are trimmed of their own leading and
trailing silence with an energy threshold, see :func:`speech_bounds`). Sound generators
cover what a room hears besides speech: tones, chords, noise bursts, clicks, beeping alarms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from salmonn_agent.audio import SAMPLE_RATE, power_db

NoiseColor = Literal["white", "pink", "brown"]


def _at_level(x: np.ndarray, level_db: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) or 1.0
    return (x * (10 ** (level_db / 20) / rms)).astype(np.float32)


def _time(seconds: float) -> np.ndarray:
    return np.arange(int(round(seconds * SAMPLE_RATE))) / SAMPLE_RATE


def tone(freq: float, seconds: float, level_db: float = -20.0) -> np.ndarray:
    """A sine tone at ``level_db`` dBFS RMS."""
    return _at_level(np.sin(2 * np.pi * freq * _time(seconds)), level_db)


def chord(freqs: tuple[float, ...] = (261.6, 329.6, 392.0), seconds: float = 1.0,
          level_db: float = -20.0, harmonics: int = 4) -> np.ndarray:
    """Held notes with a few harmonics each (C major by default), like an organ chord."""
    t = _time(seconds)
    x = sum(np.sin(2 * np.pi * f * k * t) / k for f in freqs for k in range(1, harmonics + 1))
    return _at_level(np.asarray(x), level_db)


def noise(seconds: float, level_db: float = -20.0, color: NoiseColor = "white",
          rng: np.random.Generator | None = None) -> np.ndarray:
    """White, pink (1/f) or brown (1/f^2, high-passed at 20 Hz) noise at ``level_db``."""
    rng = rng or np.random.default_rng(0)
    n = int(round(seconds * SAMPLE_RATE))
    x = rng.standard_normal(n)
    if color != "white":
        spec = np.fft.rfft(x)
        f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        f[0] = 1.0
        shape = 1 / np.sqrt(f) if color == "pink" else 1 / f
        shape[f < 20] = 0.0
        x = np.fft.irfft(spec * shape, n)
    return _at_level(x, level_db)


def clicks(seconds: float, rate_hz: float = 4.0, level_db: float = -6.0,
           rng: np.random.Generator | None = None) -> np.ndarray:
    """A train of short decaying clicks (a clock, a keyboard, knocking)."""
    rng = rng or np.random.default_rng(0)
    x = np.zeros(int(round(seconds * SAMPLE_RATE)), dtype=np.float32)
    click = rng.standard_normal(80) * np.exp(-np.arange(80) / 12)
    click *= 10 ** (level_db / 20) / np.max(np.abs(click))
    for start in np.arange(0, x.size - click.size, int(SAMPLE_RATE / rate_hz)):
        x[start : start + click.size] += click
    return x


def alarm(seconds: float, freq: float = 2500.0, beeps_hz: float = 4.0,
          level_db: float = -20.0) -> np.ndarray:
    """A beeping alarm: a tone switched on and off ``beeps_hz`` times a second."""
    t = _time(seconds)
    return _at_level(np.sin(2 * np.pi * freq * t) * ((t * beeps_hz) % 1 < 0.5), level_db)


def speech_bounds(clip: np.ndarray, threshold_db: float = -40.0) -> tuple[int, int]:
    """``(start, end)`` sample indices of the sound in ``clip``: the first and last 10 ms
    frames whose RMS is within ``threshold_db`` of the loudest frame."""
    n = clip.size // 160
    frames = clip[: n * 160].reshape(n, 160).astype(np.float64)
    level = power_db(np.mean(frames**2, axis=1))
    loud = np.flatnonzero(level >= level.max() + threshold_db)
    return int(loud[0] * 160), int((loud[-1] + 1) * 160)


@dataclass
class Event:
    """One true event of a scene: ``kind`` is ``speech`` or ``sound``; times in seconds."""

    kind: str
    start: float
    end: float
    label: str = ""


@dataclass
class SceneBuilder:
    """Lay clips end to end, then :meth:`build` the scene and its true events.

    ``noise_db`` adds a steady noise floor of that RMS level (dBFS) under everything.
    """

    noise_db: float | None = None
    noise_color: NoiseColor = "white"
    seed: int = 0
    _parts: list[np.ndarray] = field(default_factory=list)
    _events: list[Event] = field(default_factory=list)
    _length: int = 0

    @property
    def seconds(self) -> float:
        """Length of the scene so far."""
        return self._length / SAMPLE_RATE

    def _add(self, x: np.ndarray) -> int:
        start = self._length
        self._parts.append(np.asarray(x, dtype=np.float32))
        self._length += x.size
        return start

    def silence(self, seconds: float) -> "SceneBuilder":
        """Digital silence (only the noise floor, if any)."""
        self._add(np.zeros(int(round(seconds * SAMPLE_RATE)), dtype=np.float32))
        return self

    def speech(self, clip: np.ndarray, label: str = "", gain_db: float = 0.0) -> "SceneBuilder":
        """A speech clip; its true bounds are found with :func:`speech_bounds`."""
        a, b = speech_bounds(clip)
        start = self._add(clip * 10 ** (gain_db / 20))
        self._events.append(
            Event("speech", (start + a) / SAMPLE_RATE, (start + b) / SAMPLE_RATE, label)
        )
        return self

    def sound(self, samples: np.ndarray, label: str = "") -> "SceneBuilder":
        """A non-speech sound; the whole clip is the event."""
        start = self._add(samples)
        self._events.append(
            Event("sound", start / SAMPLE_RATE, (start + samples.size) / SAMPLE_RATE, label)
        )
        return self

    def build(self) -> tuple[np.ndarray, list[Event]]:
        """The scene's samples (16 kHz mono float32) and its true events."""
        x = np.concatenate(self._parts) if self._parts else np.zeros(0, dtype=np.float32)
        if self.noise_db is not None and x.size:
            rng = np.random.default_rng(self.seed)
            x = x + noise(x.size / SAMPLE_RATE, self.noise_db, self.noise_color, rng)
        return x.astype(np.float32), list(self._events)

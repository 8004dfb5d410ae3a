"""Audio synthesis for the salmonn-mini data: espeak-ng speech, ten sound-event classes, silence, mixing.

All functions return float32 mono audio at 16 kHz and are deterministic given their
``numpy.random.Generator``. Every sound class has a few *synthesis variants* (e.g. siren
``wail`` / ``yelp`` / ``hilo`` / ``whoop``) and continuous parameters drawn by :func:`draw`.

Held-out renderings (``held_out=True``):

* each class's last variant (:data:`HELD_OUT_SOUND_VARIANTS`) is used only for held-out clips;
  held-out clips draw from all variants of the class;
* every continuous parameter drawn by :func:`draw` splits its range into 10 equal bins; bins 3
  and 7 (:data:`HELD_OUT_BINS`) are used only for held-out clips, the other eight only for
  training clips - held-out parameters lie between values seen in training, never on them;
* speech voices: the espeak-ng variants in :data:`HELD_OUT_VARIANTS` are used only for held-out
  speech; speed and pitch use :func:`draw` bins in the same way.

Sound classes (:data:`SOUND_CLASSES`): alarm beeps, siren, knocking, clock ticking, rain,
dog bark, doorbell chime, music (melody and chords in several timbres), birdsong, engine.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from salmonn_agent.audio import SAMPLE_RATE as SR

HELD_OUT_BINS = (3, 7)
N_BINS = 10

# --------------------------------------------------------------------------- parameter draws


def draw(rng: np.random.Generator, lo: float, hi: float, held_out: bool) -> float:
    """A uniform value in [lo, hi) from the training bins or (``held_out``) the held-out bins."""
    bins = [b for b in range(N_BINS) if (b in HELD_OUT_BINS) == held_out]
    b = bins[int(rng.integers(len(bins)))]
    width = (hi - lo) / N_BINS
    return float(lo + width * (b + rng.random()))


def is_held_out_value(value: float, lo: float, hi: float) -> bool:
    """Whether ``value`` lies in a held-out bin of [lo, hi) (the inverse of :func:`draw`)."""
    b = min(int((value - lo) / ((hi - lo) / N_BINS)), N_BINS - 1)
    return b in HELD_OUT_BINS


def draw_int(rng: np.random.Generator, lo: int, hi: int) -> int:
    """A uniform integer in [lo, hi] (inclusive); counts and choices are shared by all splits."""
    return int(rng.integers(lo, hi + 1))


# --------------------------------------------------------------------------- small DSP helpers


def seconds(n: int) -> float:
    return n / SR


def samples(sec: float) -> int:
    return int(round(sec * SR))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def db_to_amp(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def set_rms_db(x: np.ndarray, db: float) -> np.ndarray:
    """Scale ``x`` to an RMS of ``db`` dBFS (silent input stays silent)."""
    r = rms(x)
    return x if r < 1e-9 else (x * (db_to_amp(db) / r)).astype(np.float32)


def limit_peak(x: np.ndarray, peak: float = 0.89) -> np.ndarray:
    """Scale down (never up) so that the absolute peak is at most ``peak`` (-1 dBFS)."""
    m = float(np.max(np.abs(x))) if len(x) else 0.0
    return (x * (peak / m)).astype(np.float32) if m > peak else x.astype(np.float32)


def fade(x: np.ndarray, sec: float = 0.01) -> np.ndarray:
    """Short raised-cosine fade in and out (no clicks at clip edges)."""
    n = min(samples(sec), len(x) // 2)
    if n > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))
        x = x.copy()
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def band_filter(x: np.ndarray, lo: float | None, hi: float | None, soft: float = 0.15) -> np.ndarray:
    """Zero-phase FFT band-pass with smooth (raised-cosine, ``soft`` octaves) edges."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1.0 / SR)
    gain = np.ones_like(f)
    with np.errstate(divide="ignore"):
        oct_f = np.log2(np.maximum(f, 1e-3))
    if lo is not None:
        g = np.clip((oct_f - (np.log2(lo) - soft)) / (2 * soft), 0, 1)
        gain *= 0.5 - 0.5 * np.cos(np.pi * g)
    if hi is not None:
        g = np.clip(((np.log2(hi) + soft) - oct_f) / (2 * soft), 0, 1)
        gain *= 0.5 - 0.5 * np.cos(np.pi * g)
    return np.fft.irfft(spec * gain, n=len(x)).astype(np.float32)


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-RMS pink (1/f) noise."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SR)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    x = np.fft.irfft(spec, n=n)
    return (x / (rms(x) + 1e-12)).astype(np.float32)


def smooth_noise(rng: np.random.Generator, n: int, rate_hz: float) -> np.ndarray:
    """A slowly varying random curve in [-1, 1] (cosine-interpolated knots every 1/rate s)."""
    step = max(1, samples(1.0 / rate_hz))
    knots = rng.uniform(-1, 1, n // step + 3)
    pos = np.arange(n) / step
    i = pos.astype(int)
    frac = pos - i
    w = 0.5 - 0.5 * np.cos(np.pi * frac)
    return (knots[i] * (1 - w) + knots[i + 1] * w).astype(np.float32)


def add_at(dst: np.ndarray, src: np.ndarray, start: int) -> None:
    """Add ``src`` into ``dst`` at ``start`` (clipped to ``dst``'s bounds)."""
    if start >= len(dst) or start + len(src) <= 0:
        return
    s0 = max(0, -start)
    s1 = min(len(src), len(dst) - start)
    dst[start + s0 : start + s1] += src[s0:s1]


def harmonic_tone(freq: np.ndarray | float, n: int, amps: list[float], phase0: float = 0.0) -> np.ndarray:
    """Sum of harmonics with (possibly time-varying) fundamental ``freq`` in Hz."""
    f = np.broadcast_to(np.asarray(freq, dtype=np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(f) / SR + phase0
    out = np.zeros(n)
    for k, a in enumerate(amps, start=1):
        if a:
            out += a * np.sin(k * phase) * (k * f < SR / 2 - 200)
    return out.astype(np.float32)


def decay_env(n: int, tau: float, attack: float = 0.003) -> np.ndarray:
    """Exponential decay envelope with a short linear attack."""
    t = np.arange(n) / SR
    env = np.exp(-t / tau)
    a = max(1, samples(attack))
    env[:a] *= np.linspace(0, 1, a)
    return env.astype(np.float32)


def events_in(rng: np.random.Generator, n: int, event_len: int, count: int, spacing: Callable[[], float],
              lead: float = 0.15) -> list[int]:
    """Start samples of up to ``count`` events spaced by ``spacing()`` s, each fully inside ``n``.

    The group is placed at a random offset; events that would not fit are dropped, so the
    length of the result is the true number of events in the clip.
    """
    starts = [0]
    for _ in range(count - 1):
        starts.append(starts[-1] + samples(spacing()))
    usable = n - 2 * samples(lead) - event_len
    starts = [s for s in starts if s <= usable] or [0]
    room = max(0, usable - starts[-1])
    offset = samples(lead) + int(rng.integers(0, room + 1))
    return [s + offset for s in starts if s + offset + event_len <= n]


def max_events(n: int, event_len: int, mean_spacing: float, lead: float = 0.15) -> int:
    """How many events with mean spacing fit into ``n`` samples."""
    return max(1, int((n - 2 * samples(lead) - event_len) / max(samples(mean_spacing), 1)) + 1)


# --------------------------------------------------------------------------- sound classes


@dataclass
class Sound:
    """A synthesised clip and how it was made (class, variant, count, parameters)."""

    audio: np.ndarray
    meta: dict


def _alarm(rng: np.random.Generator, n: int, variant: str, held_out: bool, count: int | None) -> Sound:
    freq = draw(rng, 700, 3200, held_out)
    beep = draw(rng, 0.07, 0.3, held_out)
    gap = draw(rng, 0.07, 0.35, held_out)
    nb = samples(beep)
    t = np.arange(nb) / SR
    if variant == "square":
        tone = np.tanh(4 * np.sin(2 * np.pi * freq * t))
    elif variant == "sine":
        tone = np.sin(2 * np.pi * freq * t)
    elif variant == "double":
        half = nb // 2
        tone = np.sin(2 * np.pi * freq * t) * (np.arange(nb) % half < int(half * 0.75))
    else:  # "warble" (held out): two tones alternating every 25 ms inside each beep
        f = np.where((t // 0.025) % 2 == 0, freq, freq * 1.25)
        tone = np.sin(2 * np.pi * np.cumsum(f) / SR)
    tone = fade(tone.astype(np.float32), 0.004)
    period = beep + gap
    if count is None:
        count = min(draw_int(rng, 3, 12), max_events(n, nb, period))
    out = np.zeros(n, np.float32)
    starts = events_in(rng, n, nb, count, lambda: period)
    for s in starts:
        add_at(out, tone, s)
    return Sound(out, {"freq": freq, "beep_s": beep, "gap_s": gap, "count": len(starts)})


def _siren(rng: np.random.Generator, n: int, variant: str, held_out: bool, count: int | None) -> Sound:
    lo = draw(rng, 450, 800, held_out)
    hi = lo * draw(rng, 1.4, 2.2, held_out)
    t = np.arange(n) / SR
    ph = rng.uniform(0, 2 * np.pi)
    if variant == "wail":
        rate = draw(rng, 0.15, 0.5, held_out)
        f = lo + (hi - lo) * (0.5 + 0.5 * np.sin(2 * np.pi * rate * t + ph))
    elif variant == "yelp":
        rate = draw(rng, 2.5, 6.0, held_out)
        f = lo + (hi - lo) * (0.5 + 0.5 * np.sin(2 * np.pi * rate * t + ph))
    elif variant == "hilo":
        rate = draw(rng, 0.7, 1.6, held_out)
        f = np.where(((t * rate + ph) % 1.0) < 0.5, hi, lo)
        f = np.convolve(f, np.ones(samples(0.01)) / samples(0.01), mode="same")
    else:  # "whoop" (held out): repeated rising sweeps
        rate = draw(rng, 0.6, 1.2, held_out)
        f = lo + (hi - lo) * ((t * rate + ph) % 1.0) ** 0.7
    amps = [1.0, 0.5, 0.33, 0.2, 0.12, 0.08]
    x = harmonic_tone(f, n, amps)
    x *= (0.8 + 0.2 * smooth_noise(rng, n, 0.5))  # distance changes
    return Sound(fade(x, 0.05), {"low_hz": lo, "high_hz": hi, "rate_hz": rate})


def _knock(rng: np.random.Generator, variant: str, held_out: bool) -> np.ndarray:
    """One knock: damped modes of a wooden (or heavy) panel plus a short contact click."""
    base = draw(rng, 90, 260, held_out) if variant == "heavy" else draw(rng, 160, 420, held_out)
    tau = draw(rng, 0.02, 0.06, held_out)
    nk = samples(0.18)
    t = np.arange(nk) / SR
    x = np.zeros(nk)
    for ratio, amp in ((1.0, 1.0), (2.31, 0.6), (3.9, 0.35), (5.7, 0.2)):
        x += amp * np.sin(2 * np.pi * base * ratio * rng.uniform(0.97, 1.03) * t) * np.exp(-t / (tau / ratio**0.3))
    click = band_filter(rng.standard_normal(nk).astype(np.float32), 800, 4000) * decay_env(nk, 0.004, 0.0005)
    x = x + 0.6 * click / (np.max(np.abs(click)) + 1e-9)
    x = x.astype(np.float32)
    if variant == "muffled":
        x = band_filter(x, None, 700)
    return fade(x, 0.002)


def _knocking(rng: np.random.Generator, n: int, variant: str, held_out: bool, count: int | None) -> Sound:
    inner = draw(rng, 0.08, 0.13, held_out) if variant == "rapid" else draw(rng, 0.14, 0.3, held_out)
    group_gap = draw(rng, 0.6, 1.2, held_out)
    nk = samples(0.18)
    if count is None:
        count = min(draw_int(rng, 2, 7), max_events(n, nk, inner + 0.2))
    group = draw_int(rng, 2, 4) if variant != "rapid" else count
    gaps = [inner if (i + 1) % group else group_gap for i in range(count - 1)]
    it = iter(gaps)
    out = np.zeros(n, np.float32)
    starts = events_in(rng, n, nk, count, lambda: next(it))
    for s in starts:
        add_at(out, _knock(rng, variant, held_out) * rng.uniform(0.8, 1.0), s)
    return Sound(out, {"count": len(starts), "interval_s": inner})


def _ticking(rng: np.random.Generator, n: int, variant: str, held_out: bool, count: int | None) -> Sound:
    if variant == "watch":
        rate = draw(rng, 3.5, 5.5, held_out)
    elif variant == "metronome":
        rate = draw(rng, 1.0, 2.6, held_out)
    else:
        rate = draw(rng, 1.0, 2.2, held_out)
    reso = draw(rng, 1800, 5000, held_out)
    nt = samples(0.03)
    t = np.arange(nt) / SR

    def tick(freq: float, tau: float) -> np.ndarray:
        c = np.sin(2 * np.pi * freq * t) * np.exp(-t / tau)
        c += 0.5 * rng.standard_normal(nt) * np.exp(-t / 0.0015)
        return c.astype(np.float32)

    out = np.zeros(n, np.float32)
    start = samples(rng.uniform(0.02, 0.3))
    for i, s in enumerate(range(start, n - nt, samples(1.0 / rate))):
        if variant == "tick_tock":
            c = tick(reso if i % 2 == 0 else reso * 0.8, 0.004)
        elif variant == "metronome":
            c = tick(reso * (0.6 if i % 4 == 0 else 0.5), 0.006) * (1.0 if i % 4 == 0 else 0.7)
        elif variant == "mechanical":  # held out: a double click per tick
            c = tick(reso, 0.003)
            c2 = np.zeros(nt, np.float32)
            c2[samples(0.008):] = c[: nt - samples(0.008)] * 0.6
            c = c + c2
        else:
            c = tick(reso * 1.2, 0.002)
        jitter = int(rng.integers(-samples(0.002), samples(0.002) + 1))
        add_at(out, c, s + jitter)
    return Sound(out, {"rate": rate, "resonance_hz": reso})


def _rain(rng: np.random.Generator, n: int, variant: str, held_out: bool, count: int | None) -> Sound:
    intensity = {"light": draw(rng, 0.1, 0.5, held_out), "heavy": draw(rng, 0.6, 1.0, held_out)}.get(
        variant, draw(rng, 0.3, 0.9, held_out))
    lo = draw(rng, 250, 900, held_out)
    hi = draw(rng, 3500, 7500, held_out) if variant != "on_roof" else draw(rng, 1500, 3000, held_out)
    bed = band_filter(pink_noise(rng, n) + 0.5 * rng.standard_normal(n).astype(np.float32), lo, hi)
    bed = bed / (rms(bed) + 1e-9) * (0.2 + 0.5 * intensity)
    drops = np.zeros(n, np.float32)
    rate = 30 + 250 * intensity
    nd = int(rate * n / SR)
    nlen = samples(0.015)
    t = np.arange(nlen) / SR
    for s, f, a, tau in zip(rng.integers(0, n, nd), rng.uniform(1200, 6000 if variant != "on_roof" else 2500, nd),
                            rng.uniform(0.1, 1.0, nd) ** 2, rng.uniform(0.001, 0.005, nd)):
        add_at(drops, (a * np.sin(2 * np.pi * f * t) * np.exp(-t / tau)).astype(np.float32), int(s))
    x = bed + drops * 0.8
    if variant == "gusty":  # held out: slow swells of intensity
        x *= 0.65 + 0.35 * smooth_noise(rng, n, draw(rng, 0.3, 1.0, held_out))
    return Sound(fade(x, 0.1), {"intensity": intensity, "band_hz": [lo, hi]})


def _bark(rng: np.random.Generator, variant: str, held_out: bool) -> np.ndarray:
    """One bark: a harmonic source with a rising-falling pitch, noise, and two formants."""
    if variant == "small":
        f0, dur = draw(rng, 500, 900, held_out), draw(rng, 0.06, 0.14, held_out)
    elif variant == "big":
        f0, dur = draw(rng, 140, 280, held_out), draw(rng, 0.15, 0.3, held_out)
    else:
        f0, dur = draw(rng, 260, 520, held_out), draw(rng, 0.1, 0.22, held_out)
    nb = samples(dur)
    u = np.linspace(0, 1, nb)
    contour = f0 * (0.85 + 0.35 * np.sin(np.pi * np.minimum(u * 1.6, 1.0))) * (1 - 0.25 * u)
    amps = [1.0 / k ** 0.8 for k in range(1, 16)]
    src = harmonic_tone(contour, nb, amps)
    noise_mix = 0.6 if variant == "rough" else 0.25
    src = src / (rms(src) + 1e-9) + noise_mix * rng.standard_normal(nb).astype(np.float32)
    spec = np.fft.rfft(src)
    f = np.fft.rfftfreq(nb, 1.0 / SR)
    f1 = draw(rng, 500, 1100, held_out) * (0.7 if variant == "big" else 1.0)
    f2 = f1 * 2.4
    env = np.exp(-((f - f1) / 350) ** 2) + 0.6 * np.exp(-((f - f2) / 600) ** 2) + 0.05
    x = np.fft.irfft(spec * env, n=nb)
    shape = np.minimum(1.0, u / 0.05) * np.exp(-u * 2.5)
    return fade((x * shape).astype(np.float32), 0.003)


def _dog_bark(rng: np.random.Generator, n: int, variant: str, held_out: bool, count: int | None) -> Sound:
    spacing = draw(rng, 0.3, 0.7, held_out)
    if count is None:
        count = min(draw_int(rng, 1, 6), max_events(n, samples(0.3), spacing))
    out = np.zeros(n, np.float32)
    starts = events_in(rng, n, samples(0.3), count, lambda: spacing * rng.uniform(0.8, 1.25))
    for s in starts:
        b = _bark(rng, variant, held_out)
        add_at(out, b / (np.max(np.abs(b)) + 1e-9) * rng.uniform(0.7, 1.0), s)
    return Sound(out, {"count": len(starts), "spacing_s": spacing})


def _bell(freq: float, dur: float, tau: float) -> np.ndarray:
    """A struck bell / chime bar: inharmonic partials with partial-dependent decay."""
    nb = samples(dur)
    t = np.arange(nb) / SR
    x = np.zeros(nb)
    partials = ((1.0, 1.0, 1.0), (2.0, 0.35, 0.6), (2.76, 0.25, 0.45), (5.4, 0.12, 0.25), (8.93, 0.05, 0.15))
    for ratio, amp, tr in partials:
        if freq * ratio < SR / 2 - 200:
            x += amp * np.sin(2 * np.pi * freq * ratio * t) * np.exp(-t / (tau * tr))
    return fade(x.astype(np.float32), 0.002)


def _doorbell(rng: np.random.Generator, n: int, variant: str, held_out: bool, count: int | None) -> Sound:
    top = draw(rng, 520, 950, held_out)
    tau = draw(rng, 0.3, 0.9, held_out)
    step = draw(rng, 0.35, 0.65, held_out)
    if variant == "ding_dong":
        notes = [top, top / rng.choice([1.26, 1.19, 1.335])]
    elif variant == "single":
        notes = [top]
    elif variant == "westminster":
        notes = [top, top / 1.26, top / 1.12, top / 1.5]
    else:  # "triple" (held out): ding-ding-dong
        notes = [top, top, top / 1.26]
    chime_len = step * (len(notes) - 1) + 1.2
    chime = np.zeros(samples(chime_len), np.float32)
    for i, f in enumerate(notes):
        add_at(chime, _bell(f, 1.2, tau), samples(i * step))
    press_gap = chime_len + draw(rng, 0.2, 0.8, held_out)
    if count is None:
        count = min(draw_int(rng, 1, 3), max_events(n, len(chime), press_gap))
    out = np.zeros(n, np.float32)
    starts = events_in(rng, n, len(chime), count, lambda: press_gap, lead=0.1)
    for s in starts:
        add_at(out, chime, s)
    return Sound(out, {"count": len(starts), "top_hz": top, "notes": len(notes)})


_PROGRESSIONS = [[0, 4, 5, 3], [0, 3, 4, 0], [0, 5, 3, 4], [5, 3, 0, 4], [0, 3, 0, 4], [1, 4, 0, 0]]
_SCALES = {"major": [0, 2, 4, 5, 7, 9, 11], "minor": [0, 2, 3, 5, 7, 8, 10]}


def _note(timbre: str, freq: float, dur: float, rng: np.random.Generator) -> np.ndarray:
    """One note of an instrument timbre (additive / Karplus-Strong synthesis)."""
    nn = samples(dur)
    t = np.arange(nn) / SR
    sustain = lambda attack, release: np.minimum(1, np.minimum(t / attack, (dur - t) / release + 0.01))  # noqa: E731
    if timbre == "piano":
        x = harmonic_tone(freq, nn, [1, 0.5, 0.3, 0.15, 0.1, 0.05]) * decay_env(nn, 0.25 + 60 / freq, 0.004)
    elif timbre == "organ":
        x = harmonic_tone(freq, nn, [1, 0.7, 0.0, 0.5, 0.0, 0.3, 0, 0.2]) * sustain(0.02, 0.04)
    elif timbre == "guitar":
        period = max(2, int(SR / freq))
        buf = rng.uniform(-1, 1, period)
        x = np.empty(nn)
        for i in range(0, nn, period):  # vectorised Karplus-Strong: one period per step
            seg = buf[: min(period, nn - i)]
            x[i : i + len(seg)] = seg
            buf = 0.996 * 0.5 * (buf + np.roll(buf, -1))
    elif timbre == "synth":
        x = harmonic_tone(freq, nn, [1 / k for k in range(1, 12)]) * sustain(0.01, 0.05)
        x = band_filter(x.astype(np.float32), None, freq * 4)
    elif timbre == "flute":
        vib = 1 + 0.006 * np.sin(2 * np.pi * 5.5 * t)
        x = harmonic_tone(freq * vib, nn, [1, 0.15, 0.05]) + 0.03 * rng.standard_normal(nn)
        x *= sustain(0.06, 0.06)
    else:  # "marimba" (held out)
        bar = np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(2 * np.pi * freq * 3.9 * t) * np.exp(-t / 0.03)
        x = bar * decay_env(nn, 0.18, 0.002)
    return fade(np.asarray(x, dtype=np.float32), 0.004)


def _music(rng: np.random.Generator, n: int, variant: str, held_out: bool, count: int | None) -> Sound:
    bpm = draw(rng, 66, 160, held_out)
    root = 2 ** ((draw(rng, 48, 60, held_out) - 69) / 12) * 440
    mode = "major" if rng.random() < 0.55 else "minor"
    scale = _SCALES[mode]
    beat = 60.0 / bpm
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    out = np.zeros(n, np.float32)
    chord_timbre = variant if variant != "flute" else "organ"
    bar = 4 * beat

    def freq_of(degree: int, octave: int) -> float:
        d, o = degree % 7, degree // 7
        return root * 2 ** (octave + o + scale[d] / 12)

    pos, bar_i, deg = 0.0, 0, int(rng.integers(0, 7))
    while samples(pos) < n:
        chord = prog[bar_i % len(prog)]
        for k in (0, 2, 4):  # the triad, one octave below the melody
            add_at(out, 0.25 * _note(chord_timbre, freq_of(chord + k, 0), min(bar, 3.0), rng), samples(pos))
        t_in_bar = 0.0
        while t_in_bar < bar - 1e-6:
            dur = beat * (0.5 if rng.random() < 0.4 else 1.0)
            deg = int(np.clip(deg + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 0, 9))
            if rng.random() < 0.35:
                deg = chord + rng.choice([0, 2, 4])
            if rng.random() > 0.08:  # occasional rest
                add_at(out, 0.5 * _note(variant, freq_of(deg, 1), dur * 0.95, rng), samples(pos + t_in_bar))
            t_in_bar += dur
        pos += bar
        bar_i += 1
    tempo_word = "slow" if bpm < 90 else ("fast" if bpm > 125 else "moderate")
    return Sound(fade(out, 0.05), {"bpm": bpm, "mode": mode, "tempo_word": tempo_word, "root_hz": root})


def _birdsong(rng: np.random.Generator, n: int, variant: str, held_out: bool, count: int | None) -> Sound:
    birds = draw_int(rng, 1, 3)
    out = np.zeros(n, np.float32)
    for _ in range(birds):
        base = draw(rng, 2000, 6000, held_out)
        gain = rng.uniform(0.5, 1.0)
        s = samples(rng.uniform(0.0, 0.8))
        while s < n:
            if variant == "chirps":
                d = rng.uniform(0.04, 0.14)
                u = np.linspace(0, 1, samples(d))
                f = base * (1 + rng.uniform(-0.4, 0.4) * u)
                call = harmonic_tone(f, len(u), [1, 0.1]) * np.sin(np.pi * u) ** 2
                gap = rng.uniform(0.08, 0.5)
            elif variant == "trill":
                d = rng.uniform(0.3, 0.9)
                u = np.linspace(0, 1, samples(d))
                rate = draw(rng, 14, 26, held_out)
                f = base * (1 + 0.15 * np.sin(2 * np.pi * rate * u * d))
                pulses = 0.5 + 0.5 * np.sin(2 * np.pi * rate * u * d)
                call = harmonic_tone(f, len(u), [1, 0.1]) * pulses * np.sin(np.pi * u)
                gap = rng.uniform(0.4, 1.2)
            elif variant == "tweet_call":
                d = rng.uniform(0.35, 0.6)
                u = np.linspace(0, 1, samples(d))
                f = np.where(u < 0.45, base * 1.2, base * 0.85)
                f = np.convolve(f, np.ones(80) / 80, mode="same")
                call = harmonic_tone(f, len(u), [1, 0.05]) * np.sin(np.pi * u) * (np.abs(u - 0.47) > 0.04)
                gap = rng.uniform(0.5, 1.4)
            else:  # "warble" (held out): fast vibrato
                d = rng.uniform(0.25, 0.7)
                u = np.linspace(0, 1, samples(d))
                f = base + rng.uniform(300, 800) * np.sin(2 * np.pi * rng.uniform(20, 40) * u * d)
                call = harmonic_tone(f, len(u), [1, 0.1]) * np.sin(np.pi * u)
                gap = rng.uniform(0.2, 0.9)
            add_at(out, (gain * call).astype(np.float32), s)
            s += samples(d + gap)
    out += 0.01 * band_filter(rng.standard_normal(n).astype(np.float32), 300, 3000)  # faint outdoor air
    return Sound(fade(out, 0.02), {"birds": birds})


def _engine(rng: np.random.Generator, n: int, variant: str, held_out: bool, count: int | None) -> Sound:
    if variant == "truck":
        f0 = draw(rng, 14, 28, held_out)
    elif variant == "motorbike":
        f0 = draw(rng, 55, 110, held_out)
    else:
        f0 = draw(rng, 22, 50, held_out)
    t = np.arange(n) / SR
    f = f0 * (1 + 0.02 * smooth_noise(rng, n, 3.0))
    if variant == "rev":
        peak = rng.uniform(0.3, 0.7)
        f = f * (1 + draw(rng, 0.8, 2.0, held_out) * np.exp(-((t / (n / SR) - peak) / 0.18) ** 2))
    amps = [1.0 / k ** 0.7 for k in range(1, 40)]
    x = harmonic_tone(f, n, amps)
    x = x / (rms(x) + 1e-9)
    rumble = band_filter(rng.standard_normal(n).astype(np.float32), 30, 400 if variant != "motorbike" else 1500)
    x = x + (0.8 if variant == "truck" else 0.4) * rumble / (rms(rumble) + 1e-9)
    x *= 1 + 0.3 * np.sin(2 * np.pi * np.cumsum(f / 2) / SR)  # firing-cycle modulation
    x = band_filter(x.astype(np.float32), 25, 3500)
    return Sound(fade(x, 0.1), {"f0_hz": f0})


_SYNTHS: dict[str, Callable[..., Sound]] = {
    "alarm": _alarm, "siren": _siren, "knocking": _knocking, "ticking": _ticking, "rain": _rain,
    "dog_bark": _dog_bark, "doorbell": _doorbell, "music": _music, "birdsong": _birdsong, "engine": _engine,
}
SOUND_CLASSES: tuple[str, ...] = tuple(_SYNTHS)
SOUND_VARIANTS: dict[str, tuple[str, ...]] = {  # the last variant of each class is held out
    "alarm": ("square", "sine", "double", "warble"),
    "siren": ("wail", "yelp", "hilo", "whoop"),
    "knocking": ("wood", "heavy", "rapid", "muffled"),
    "ticking": ("tick_tock", "watch", "metronome", "mechanical"),
    "rain": ("light", "heavy", "on_roof", "gusty"),
    "dog_bark": ("medium", "small", "big", "rough"),
    "doorbell": ("ding_dong", "single", "westminster", "triple"),
    "music": ("piano", "organ", "guitar", "synth", "flute", "marimba"),
    "birdsong": ("chirps", "trill", "tweet_call", "warble"),
    "engine": ("idle", "rev", "truck", "motorbike"),
}
HELD_OUT_SOUND_VARIANTS: dict[str, str] = {c: v[-1] for c, v in SOUND_VARIANTS.items()}
COUNTABLE_CLASSES: tuple[str, ...] = ("alarm", "knocking", "dog_bark", "doorbell")


def sound_variants(cls: str, held_out: bool) -> tuple[str, ...]:
    """Variants allowed for a split: training variants, or (held out) all variants."""
    variants = SOUND_VARIANTS[cls]
    return variants if held_out else variants[:-1]


def synth_sound(cls: str, rng: np.random.Generator, duration: float, held_out: bool = False,
                variant: str | None = None, count: int | None = None) -> Sound:
    """A clip of sound class ``cls`` lasting exactly ``duration`` seconds, peak-normalised to 0.5.

    ``count`` fixes the number of events for :data:`COUNTABLE_CLASSES`; ``meta`` reports the
    class, variant and parameters (and ``count`` for countable classes).
    """
    if cls not in _SYNTHS:
        raise ValueError(f"unknown sound class {cls!r}; choose from {SOUND_CLASSES}")
    if variant is None:
        allowed = sound_variants(cls, held_out)
        variant = allowed[int(rng.integers(len(allowed)))]
    n = samples(duration)
    sound = _SYNTHS[cls](rng, n, variant, held_out, count)
    x = np.nan_to_num(sound.audio[:n].astype(np.float32))
    peak = float(np.max(np.abs(x))) if n else 0.0
    sound.audio = x * (0.5 / peak) if peak > 0 else x
    sound.meta = {"sound_class": cls, "variant": variant, **_plain(sound.meta)}
    return sound


def _plain(meta: dict) -> dict:
    """Round floats so metadata stays short and JSON-friendly."""
    def conv(v):
        if isinstance(v, (float, np.floating)):
            return round(float(v), 3)
        if isinstance(v, (list, tuple)):
            return [conv(u) for u in v]
        if isinstance(v, np.integer):
            return int(v)
        return v
    return {k: conv(v) for k, v in meta.items()}


SILENCE_VARIANTS = ("digital", "hiss", "room")


def silence(rng: np.random.Generator, duration: float, held_out: bool = False) -> Sound:
    """Digital silence, a faint hiss (-66..-50 dBFS) or a faint room hum with noise."""
    n = samples(duration)
    variant = SILENCE_VARIANTS[int(rng.integers(len(SILENCE_VARIANTS)))]
    if variant == "digital":
        return Sound(np.zeros(n, np.float32), {"variant": variant, "level_db": None})
    level = draw(rng, -66, -50, held_out)
    if variant == "hiss":
        x = rng.standard_normal(n).astype(np.float32)
    else:
        hum = harmonic_tone(rng.choice([50.0, 60.0]), n, [1, 0.5, 0.3])
        x = band_filter(pink_noise(rng, n), 40, 2000) + 0.7 * hum
    return Sound(set_rms_db(x, level), {"variant": variant, "level_db": round(level, 1)})


# --------------------------------------------------------------------------- speech (espeak-ng)

ESPEAK_LANGS: tuple[str, ...] = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc",
                                 "en-gb-x-gbclan", "en-gb-x-gbcwmd")
ESPEAK_LANG_WEIGHTS: tuple[float, ...] = (0.3, 0.2, 0.1, 0.08, 0.08, 0.1, 0.07, 0.07)
# espeak-ng voice variants (voices/!v) with a clear gender (checked by median F0: male 70-145 Hz,
# female 170-280 Hz at the default pitch). Left out: whisper, whisperf (no voicing), Demonic, croak,
# zac, shelby, Nguyen, and the high male voices UniRobot and Marco (they overlap female pitch).
MALE_VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Alex", "Andy", "AnxiousAndy", "Denis", "Diogo",
    "Gene", "Gene2", "Henrique", "Hugo", "Jacky", "Lee", "Mario", "Michael", "Mike",
    "Mr serious", "Storm", "Tweaky", "adam", "announcer", "antonio", "benjamin", "boris",
    "caleb", "david", "ed", "edward", "edward2", "fast", "grandpa", "gustave", "iven", "iven2",
    "iven3", "iven4", "john", "kaukovalta", "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6",
    "marcelo", "max", "michel", "miguel", "norbert", "pablo", "paul", "pedro", "quincy", "rob",
    "robert", "robosoft", "robosoft2", "robosoft3", "robosoft4", "robosoft5", "robosoft7", "sandro",
    "travis", "victor",
)
FEMALE_VARIANTS: tuple[str, ...] = (
    "f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "anikaRobot", "aunty",
    "belinda", "grandma", "linda", "steph", "steph2", "steph3",
)
# Held out for test speech: whole families (no near-duplicate of a held-out variant in training).
HELD_OUT_VARIANTS: frozenset[str] = frozenset({
    "m3", "m7", "Andy", "AnxiousAndy", "travis", "edward", "edward2", "gustave", "marcelo",
    "f3", "f5", "Andrea", "aunty",
})
SPEED_RANGE = (120.0, 220.0)  # words per minute (espeak -s)
# espeak -p (0-99, 50 = the variant's own pitch), per gender so that the voices stay apart:
# measured median F0 is at most ~150 Hz for male variants at -p 65 and at least ~147 Hz
# (held-out aunty; ~165 Hz for training voices) for female variants at -p 40.
PITCH_RANGES = {"male": (25.0, 65.0), "female": (40.0, 80.0)}


@dataclass(frozen=True)
class Voice:
    """One espeak-ng rendering setup: language/accent, variant, gender, speed, pitch, word gap."""

    lang: str
    variant: str
    gender: str
    speed: int
    pitch: int
    gap: int

    @property
    def name(self) -> str:
        return f"{self.lang}+{self.variant}"

    @property
    def speed_word(self) -> str:
        return "slow" if self.speed < 140 else ("fast" if self.speed > 195 else "normal")


def voice_variants(gender: str, held_out: bool) -> tuple[str, ...]:
    """The espeak variants of a gender for training (``held_out=False``) or held-out speech."""
    pool = MALE_VARIANTS if gender == "male" else FEMALE_VARIANTS
    return tuple(v for v in pool if (v in HELD_OUT_VARIANTS) == held_out)


def draw_voice(rng: np.random.Generator, held_out: bool, gender: str | None = None) -> Voice:
    """A random voice: gender 50/50, a variant of the split, accent, and speed/pitch from the split's bins."""
    if gender is None:
        gender = "male" if rng.random() < 0.5 else "female"
    variants = voice_variants(gender, held_out)
    variant = variants[int(rng.integers(len(variants)))]
    weights = np.asarray(ESPEAK_LANG_WEIGHTS) / sum(ESPEAK_LANG_WEIGHTS)
    lang = ESPEAK_LANGS[int(rng.choice(len(ESPEAK_LANGS), p=weights))]
    speed = int(draw(rng, *SPEED_RANGE, held_out))
    pitch = int(draw(rng, *PITCH_RANGES[gender], held_out))
    gap = draw_int(rng, 0, 3)
    return Voice(lang, variant, gender, speed, pitch, gap)


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, voice: Voice, trim: bool = True) -> np.ndarray:
    """Speech of ``text`` by espeak-ng as 16 kHz float32 (deterministic for a given espeak-ng).

    The text goes through stdin, so text starting with ``-`` is safe; leading and trailing
    silence is trimmed (``trim``).
    """
    cmd = ["espeak-ng", "-v", voice.name, "-s", str(voice.speed), "-p", str(voice.pitch),
           "-g", str(voice.gap), "--stdout", "--stdin"]
    proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, check=False)
    if proc.returncode != 0 or len(proc.stdout) < 64:
        raise RuntimeError(f"espeak-ng failed for voice {voice.name!r}: {proc.stderr.decode(errors='replace').strip()}")
    rate, pcm = _parse_stream_wav(proc.stdout)
    x = pcm.astype(np.float32) / 32768.0
    if rate != SR:
        import soxr

        x = soxr.resample(x, rate, SR, quality="HQ").astype(np.float32)
    return trim_silence(x) if trim else x


def _parse_stream_wav(data: bytes) -> tuple[int, np.ndarray]:
    """Parse espeak-ng's streamed WAV (its size fields are placeholders): rate and int16 samples."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise RuntimeError("espeak-ng did not write a WAV stream")
    rate = int.from_bytes(data[24:28], "little")
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if cid == b"data":
            body = data[pos + 8 :]
            return rate, np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2")
        pos += 8 + size
    raise RuntimeError("no data chunk in espeak-ng output")


def trim_silence(x: np.ndarray, threshold_db: float = -50.0, pad: float = 0.05) -> np.ndarray:
    """Cut leading/trailing audio quieter than ``threshold_db`` relative to the peak (keep ``pad`` s)."""
    if not len(x):
        return x
    thr = np.max(np.abs(x)) * db_to_amp(threshold_db)
    idx = np.flatnonzero(np.abs(x) > thr)
    if not len(idx):
        return x
    a = max(0, idx[0] - samples(pad))
    b = min(len(x), idx[-1] + samples(pad))
    return x[a:b]


# --------------------------------------------------------------------------- mixing and files


def mix_at_snr(speech: np.ndarray, background: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech + background`` with the background scaled to ``snr_db`` below the speech (active-speech RMS)."""
    active = speech[np.abs(speech) > np.max(np.abs(speech)) * 0.02] if np.any(speech) else speech
    s, b = rms(active), rms(background)
    if b < 1e-9:
        return speech.copy()
    return (speech + background * (s / b) * db_to_amp(-snr_db)).astype(np.float32)


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """Float [-1, 1) to int16 with rounding (no wrap-around)."""
    return np.clip(np.round(x * 32767.0), -32767, 32767).astype("<i2")


def wav_bytes(x: np.ndarray) -> bytes:
    """16 kHz mono 16-bit PCM WAV file contents, written by the standard library (no timestamps)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(to_pcm16(x).tobytes())
    return buf.getvalue()


def write_wav(path: str | Path, x: np.ndarray) -> None:
    """Write ``x`` as a 16 kHz mono 16-bit WAV file (byte-identical for identical input)."""
    Path(path).write_bytes(wav_bytes(x))


# --------------------------------------------------------------------------- simple features (tests, sanity checks)


def spectral_centroid(x: np.ndarray) -> float:
    """Power-weighted mean frequency in Hz."""
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1.0 / SR)
    return float(np.sum(f * p) / (np.sum(p) + 1e-12))


def periodicity(x: np.ndarray, fmin: float = 60.0, fmax: float = 1000.0) -> float:
    """Peak normalised autocorrelation in the pitch-lag range (1 = perfectly periodic)."""
    x = x - np.mean(x)
    n = len(x)
    spec = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:n]
    if ac[0] <= 0:
        return 0.0
    lo, hi = int(SR / fmax), min(int(SR / fmin), n - 1)
    return float(np.max(ac[lo:hi]) / ac[0])


def envelope_modulation(x: np.ndarray, frame: float = 0.02) -> float:
    """Coefficient of variation of frame RMS (0 = steady, large = bursty)."""
    m = samples(frame)
    k = len(x) // m
    if k < 2:
        return 0.0
    e = np.sqrt(np.mean(x[: k * m].reshape(k, m) ** 2, axis=1))
    return float(np.std(e) / (np.mean(e) + 1e-12))


FEATURE_BANDS_HZ = (0, 250, 500, 1000, 2000, 4000, 8000)


def feature_vector(x: np.ndarray) -> np.ndarray:
    """Simple clip features: log energy share in six bands, log centroid, flatness, periodicity, modulation."""
    p = np.abs(np.fft.rfft(x)) ** 2 + 1e-12
    f = np.fft.rfftfreq(len(x), 1.0 / SR)
    total = np.sum(p)
    shares = [np.log(np.sum(p[(f >= lo) & (f < hi)]) / total + 1e-6)
              for lo, hi in zip(FEATURE_BANDS_HZ[:-1], FEATURE_BANDS_HZ[1:])]
    flatness = float(np.exp(np.mean(np.log(p))) / np.mean(p))
    return np.array([*shares, np.log(spectral_centroid(x) + 1), np.log(flatness + 1e-9),
                     periodicity(x), envelope_modulation(x)])

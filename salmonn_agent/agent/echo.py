"""The echo gate: the assistant must not hear itself, but must hear a person talking over it.

    speaker = Speaker(load_tts())
    source = EchoGate(MicrophoneSource(), speaker.reference, on_barge_in=speaker.interrupt)
    with Listener(source) as listener: ...

:class:`EchoGate` wraps the microphone's :class:`~salmonn_agent.stream.sources.Source`. For
every 10 ms frame heard while the speaker plays (or just after), :class:`EchoCanceller` finds
the assistant's own voice in it and takes it out:

1. **Delay.** The echo comes back after the sound device's output and input latencies and the
   way through the room. Every 100 ms of playback, the last 0.5 s of input is correlated with
   the playback reference (:class:`~salmonn_agent.agent.speech_out.PlaybackReference`) at
   every delay up to ``max_delay_ms``; a clear peak (normalised correlation over
   ``lock_score``) sets the delay, which is kept across answers (the room does not move).
2. **Echo path.** A short FIR filter (``taps``, starting ``pre_taps`` before the delay) maps
   the reference to the echo: a least-squares fit over the recent frames (exponentially
   forgotten), refitted every frame, so it follows the room's gain and colouring.
3. **Room tail.** The filter is short; the room's reverberation after it stays in the
   residual. Its power is predicted from the echo's power in the previous ``tail_ms``
   (per-lag weights, fitted on frames no louder than the echo itself).
4. **Residual.** The fitted echo is subtracted. A frame whose residual is ``echo_ratio_db``
   below the echo (or its decaying envelope) plus 3 dB over the predicted tail is echo only:
   it goes on attenuated by ``suppress_db``, so the segmenter sees near silence. Any other
   frame goes on as the residual: a person over the playback, with the assistant's voice taken
   out.

Measured on simulated echo (``tests/agent/test_echo.py`` and by hand): a reverberant tail of
50 ms is handled; tails of 150-300 ms as strong as the direct sound still leak (sound windows,
a false barge-in), and a person more than about 9 dB under the echo is not heard during
playback.

A person's speech during playback (``barge_in_ms`` of voiced residual frames within
``barge_in_window_ms``) calls ``on_barge_in`` at once, from the listener's thread: wired to
:meth:`~salmonn_agent.agent.speech_out.Speaker.interrupt`, the playback stops without waiting
for the segmenter's onset (which needs 150 ms of voiced frames in 30 ms steps) or the event
loop.

Until the first delay is found (the first 100-300 ms of the first answer), playback-time
input is attenuated as if it were echo; if no echo is found after ``unlocked_suppress_ms``
(headphones, a muted speaker), input passes unchanged.

**Clocks.** The input chunk's time comes from its arrival (``clock()``) and its position: the
earliest arrival seen fixes the line ``time = offset + position / 16000``. The reference
stamps its blocks the same way. The delay search covers what both lines get wrong.

Why hand-written: the task is narrower than a full echo canceller (decide "only our own echo"
versus "a person", and hand the residual on), the reference is known exactly, and the stream
arrives in the listener's own chunks. A general acoustic echo canceller library (WebRTC's
audio processing module, e.g. in the ``livekit`` wheel, ~12 MB) wants the render and capture
streams fed in real-time lockstep in 10 ms frames from the audio threads, which
:class:`~salmonn_agent.stream.sources.MicrophoneSource`'s queue and replayed files do not
give; this module is a few hundred lines of numpy with no new dependency.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from salmonn_agent.agent.speech_out import PlaybackReference
from salmonn_agent.audio import SAMPLE_RATE
from salmonn_agent.stream.sources import AudioChunk, Source
from salmonn_agent.stream.vad import FrameVad

logger = logging.getLogger(__name__)

FRAME = SAMPLE_RATE // 100
"""10 ms at 16 kHz: the gate's frame."""
_RESHIFT = 32
"""Samples (2 ms) the input-to-reference alignment may wobble before it is moved."""
_SILENT = 1e-9
_TAIL_MARGIN = 2.0
"""A frame must carry this much more than the predicted room tail (3 dB) to be a person."""
"""Mean power (-90 dBFS) under which the reference is silence."""


class EchoConfig(BaseModel):
    """How the echo gate finds and removes the assistant's own voice (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    max_delay_ms: float = Field(400.0, gt=0, le=1000, description="Longest echo delay searched.")
    lead_ms: float = Field(
        60.0, ge=0, le=200, description="How much earlier than its time stamp the echo may show (clock errors)."
    )
    taps: int = Field(64, ge=8, le=512, description="Echo-path filter length (samples at 16 kHz).")
    pre_taps: int = Field(16, ge=0, description="Filter taps before the found delay.")
    forget: float = Field(0.97, gt=0.5, lt=1.0, description="Per-frame forgetting of the echo-path fit.")
    lock_score: float = Field(0.3, gt=0, lt=1, description="Normalised correlation that sets the delay.")
    echo_ratio_db: float = Field(-9.0, le=0, description="Residual this far under the echo: echo only.")
    suppress_db: float = Field(-30.0, le=0, description="Attenuation of echo-only frames.")
    tail_ms: float = Field(250.0, ge=0, description="The echo's decaying tail after playback (30 dB over it).")
    unlocked_suppress_ms: float = Field(
        300.0, ge=0, description="Playback-time input attenuated while no echo delay is found yet."
    )
    barge_in_ms: int = Field(60, gt=0, description="Voiced residual that stops the playback...")
    barge_in_window_ms: int = Field(100, gt=0, description="...within this window.")
    vad_mode: int = Field(2, ge=0, le=3, description="webrtcvad aggressiveness for the barge-in check.")
    min_level_db: float = Field(-50.0, le=0, description="Quieter residual frames never count as a person.")


class EchoStats(BaseModel):
    """What the gate did so far."""

    frames: int = 0
    playback_frames: int = 0
    """Frames heard while the speaker played (or in its tail)."""
    suppressed_frames: int = 0
    """Frames judged echo only."""
    delay_ms: float | None = None
    """The echo delay found (None: none yet)."""
    barge_ins: int = 0


class EchoCanceller:
    """Removes the reference's echo from an input stream, frame by frame (see the module docstring).

    ``reference(first, n)``: the reference aligned to input samples ``first .. first + n``
    (absolute input positions, shifted earlier by ``lead_ms``), read fresh on every call.
    """

    def __init__(self, reference: Callable[[int, int], np.ndarray], config: EchoConfig | None = None) -> None:
        self.config = cfg = config or EchoConfig()
        self.reference = reference
        self.stats = EchoStats()
        self._pos = 0
        self._max_lag = int((cfg.max_delay_ms + cfg.lead_ms) * SAMPLE_RATE / 1000)
        self._window = SAMPLE_RATE // 2
        self._x = np.zeros(self._window, dtype=np.float32)
        self._delay: int | None = None
        L = cfg.taps
        self._R = np.zeros((L, L))
        self._p = np.zeros(L)
        self._h = np.zeros(L)
        self._env = 0.0
        m = max(1, int(cfg.tail_ms // 10))
        self._tail_hist = np.zeros(m)
        self._w = np.zeros(m)
        self._Rt = np.zeros((m, m))
        self._pt = np.zeros(m)
        self._decay = 10.0 ** (-3.0 / max(1.0, cfg.tail_ms / 10.0))
        self._ratio = 10.0 ** (cfg.echo_ratio_db / 10.0)
        self._gain = np.float32(10.0 ** (cfg.suppress_db / 20.0))
        self._since_search = 0
        self._unlocked = 0

    @property
    def delay(self) -> int | None:
        """The echo delay in samples (from the lead-shifted reference), once found."""
        return self._delay

    @property
    def position(self) -> int:
        """Input samples processed."""
        return self._pos

    def realign(self, shift: int) -> None:
        """The reference is now read ``shift`` samples further on for the same input: the echo's
        delay grows by as much (the echo-path fit is kept)."""
        if self._delay is not None:
            self._delay = max(self.config.pre_taps, self._delay + shift)

    def skip(self, n: int) -> None:
        """The input lost ``n`` samples: move on (the echo-path fit is kept)."""
        self._pos += n
        self._x[:] = 0.0

    def process(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The input ``x`` with the echo taken out, and per 10 ms frame (the last may be short):
        whether it was heard during playback and whether it was echo only."""
        x = np.asarray(x, dtype=np.float32)
        out = np.empty_like(x)
        n_frames = -(-x.size // FRAME)
        playing = np.zeros(n_frames, dtype=bool)
        echo = np.zeros(n_frames, dtype=bool)
        for i in range(n_frames):
            a, b = i * FRAME, min((i + 1) * FRAME, x.size)
            out[a:b], playing[i], echo[i] = self._frame(x[a:b])
        return out, playing, echo

    def _frame(self, xf: np.ndarray) -> tuple[np.ndarray, bool, bool]:
        cfg, F = self.config, xf.size
        start, self._pos = self._pos, self._pos + F
        self._x = np.concatenate([self._x[F:], xf]) if F < self._x.size else xf[-self._x.size :]
        self.stats.frames += 1
        # Read fresh every frame: the newest reference may not have been written when the
        # previous frame was processed.
        span = self._max_lag + cfg.taps
        rf = self.reference(start - span, span + F)
        active = float(np.dot(rf, rf)) / rf.size > _SILENT
        if not active and self._env <= _SILENT:
            self._unlocked = 0
            return xf, False, False
        self.stats.playback_frames += 1
        if active:
            self._since_search += 1
            if self._delay is None or self._since_search >= 10:
                self._since_search = 0
                self._search_delay()
        if self._delay is None:
            self._unlocked += 1
            if active and self._unlocked * 10 <= cfg.unlocked_suppress_ms:
                self.stats.suppressed_frames += 1
                return xf * self._gain, True, True
            return xf, True, False
        L = cfg.taps
        shift = self._delay - cfg.pre_taps
        base = self.reference(start - shift - (L - 1), F + L - 1).astype(np.float64)
        A = np.lib.stride_tricks.sliding_window_view(base, L)[:, ::-1]
        if float(np.dot(base, base)) > _SILENT * base.size:
            lam = cfg.forget
            self._R = lam * self._R + A.T @ A
            self._p = lam * self._p + A.T @ xf
            ridge = 1e-3 * np.trace(self._R) / L + 1e-9
            try:
                self._h = np.linalg.solve(self._R + ridge * np.eye(L), self._p)
            except np.linalg.LinAlgError:
                pass
        y = (A @ self._h).astype(np.float32)
        e = xf - y
        ey, ee = float(np.dot(y, y)) / F, float(np.dot(e, e)) / F
        self._env = max(ey, self._env * self._decay)
        if self._env <= _SILENT:
            self._env = 0.0
        tail = self._tail_power(ey, ee)
        is_echo = ee < self._ratio * self._env + _TAIL_MARGIN * tail
        if is_echo:
            self.stats.suppressed_frames += 1
            return e * self._gain, True, True
        return e, True, False

    def _tail_power(self, ey: float, ee: float) -> float:
        """The room's reverberant tail left in the residual, predicted from the echo's power in
        the previous frames (weights fitted by least squares on frames that are not louder
        than the echo itself, i.e. no person talking), then this frame's power is remembered."""
        hist = self._tail_hist
        tail = max(0.0, float(self._w @ hist))
        if hist.any() and ee <= max(2.0 * tail, self._env):
            lam = 0.995
            self._Rt = lam * self._Rt + np.outer(hist, hist)
            self._pt = lam * self._pt + hist * ee
            ridge = 1e-3 * np.trace(self._Rt) / hist.size + 1e-12
            self._w = np.clip(np.linalg.solve(self._Rt + ridge * np.eye(hist.size), self._pt), 0.0, None)
        self._tail_hist = np.concatenate([[ey], hist[:-1]])
        return tail

    def _search_delay(self) -> None:
        cfg, W, D = self.config, self._window, self._max_lag
        r = self.reference(self._pos - W - D, W + D).astype(np.float64)
        x = self._x.astype(np.float64)
        ex = float(np.dot(x, x))
        if ex <= _SILENT * W or float(np.dot(r, r)) <= _SILENT * W:
            return
        n = 1 << int(np.ceil(np.log2(W + D + W)))
        cc = np.fft.irfft(np.conj(np.fft.rfft(x, n)) * np.fft.rfft(r, n), n)[: D + 1]
        csum = np.concatenate([[0.0], np.cumsum(r * r)])
        er = csum[W : W + D + 1] - csum[: D + 1]
        score = np.abs(cc) / np.sqrt(ex * er + 1e-12)
        m = int(np.argmax(score))
        if score[m] < cfg.lock_score:
            return
        lag = max(cfg.pre_taps, D - m)
        if self._delay is None or abs(lag - self._delay) > cfg.pre_taps // 2:
            if self._delay is not None:
                logger.debug("echo delay moved from %d to %d samples", self._delay, lag)
            self._delay = lag
            self._R[:] = 0.0
            self._p[:] = 0.0
            self._h[:] = 0.0
        self.stats.delay_ms = round((self._delay - cfg.lead_ms * SAMPLE_RATE / 1000) * 1000 / SAMPLE_RATE, 1)


Timebase = Literal["wall", "stream"]


class EchoGate(Source):
    """A :class:`~salmonn_agent.stream.sources.Source` with the speaker's echo taken out.

    ``reference``: the speaker's :class:`~salmonn_agent.agent.speech_out.PlaybackReference`.
    ``timebase``: ``"wall"`` (a live microphone: chunk times from their arrival on ``clock``,
    the speaker's clock) or ``"stream"`` (the reference is stamped in seconds of this stream:
    replayed or simulated input). ``on_barge_in``: called (in the listener's thread) when a
    person speaks over the playback.
    """

    def __init__(
        self,
        source: Source,
        reference: PlaybackReference,
        *,
        config: EchoConfig | None = None,
        on_barge_in: Callable[[], object] | None = None,
        timebase: Timebase = "wall",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.source = source
        self.reference = reference
        self.config = cfg = config or EchoConfig()
        self.on_barge_in = on_barge_in
        self.timebase = timebase
        self.clock = clock
        self.canceller = EchoCanceller(self._aligned_reference, cfg)
        self._offset: float | None = 0.0 if timebase == "stream" else None
        self._shift: int | None = None
        self._offset_at = 0.0
        self._vad: FrameVad | None = None
        self._voiced: deque[bool] = deque(maxlen=max(1, cfg.barge_in_window_ms // 10))
        self._armed = True
        self._quiet_frames = 0

    @property
    def stats(self) -> EchoStats:
        """What the gate did so far."""
        return self.canceller.stats

    @property
    def overflows(self) -> int:
        """The wrapped source's overflows."""
        return self.source.overflows

    @property
    def dropped_samples(self) -> int:
        """The wrapped source's lost samples."""
        return self.source.dropped_samples

    @property
    def stopped(self) -> bool:
        """The wrapped source was stopped."""
        return self.source.stopped

    def start(self) -> None:
        """Open the wrapped source (and webrtcvad for the barge-in check)."""
        if self._vad is None:
            self._vad = FrameVad(self.config.vad_mode)
        self.source.start()
        super().start()

    def stop(self) -> None:
        """Stop the wrapped source."""
        self.source.stop()
        super().stop()

    def close(self) -> None:
        """Close the wrapped source."""
        self.source.close()
        super().close()

    def _aligned_reference(self, first: int, n: int) -> np.ndarray:
        if self._shift is None:
            return np.zeros(n, dtype=np.float32)
        return self.reference.read_samples(first + self._shift, n)

    def _place(self, chunk: AudioChunk) -> None:
        """Update the input's time line and, from it, the whole-sample shift to the reference."""
        ref_offset = self.reference.offset
        if self.timebase == "wall":
            self._place_wall(chunk)
        if self._offset is None or ref_offset is None:
            return
        lead = self.config.lead_ms / 1000.0
        shift = int(round((self._offset + lead - ref_offset) * SAMPLE_RATE))
        if self._shift is None:
            self._shift = shift
        elif abs(shift - self._shift) > _RESHIFT:
            # Only a real move (clock drift, a stalled stream) changes the alignment: following
            # every sub-millisecond wobble of the estimates would spoil the echo-path fit.
            self.canceller.realign(shift - self._shift)
            self._shift = shift

    def _place_wall(self, chunk: AudioChunk) -> None:
        now = self.clock()
        candidate = now - (chunk.start_sample + chunk.samples.size) / SAMPLE_RATE
        if self._offset is None:
            self._offset = candidate
        else:
            grown = self._offset + (now - self._offset_at) * 1e-4
            self._offset = min(grown, candidate)
        self._offset_at = now

    def chunks(self) -> Iterator[AudioChunk]:
        """The wrapped source's chunks, the echo taken out (heartbeats pass as they are)."""
        if self._vad is None:
            self._vad = FrameVad(self.config.vad_mode)
        for chunk in self.source:
            if not chunk.samples.size:
                yield chunk
                continue
            gap = chunk.start_sample - self.canceller.position
            if gap > 0:
                self.canceller.skip(gap)
            self._place(chunk)
            out, playing, echo = self.canceller.process(chunk.samples)
            self._check_barge_in(out, playing, echo)
            yield AudioChunk(out, chunk.start_sample)

    def _check_barge_in(self, out: np.ndarray, playing: np.ndarray, echo: np.ndarray) -> None:
        cfg = self.config
        need = max(1, cfg.barge_in_ms // 10)
        full = out.size // FRAME
        voiced = np.zeros(len(playing), dtype=bool)
        if full and playing[:full].any():
            frames = out[: full * FRAME].reshape(full, FRAME)
            power = np.einsum("ij,ij->i", frames, frames) / FRAME
            loud = power >= 10.0 ** (cfg.min_level_db / 10.0)
            assert self._vad is not None
            voiced[:full] = loud & ~echo[:full] & playing[:full] & self._vad.classify(frames)
        for i in range(len(playing)):
            if not playing[i]:
                self._quiet_frames += 1
                if self._quiet_frames >= 30:  # 300 ms without playback: the next playback may be interrupted
                    self._armed = True
                    self._voiced.clear()
                continue
            self._quiet_frames = 0
            self._voiced.append(bool(voiced[i]))
            if self._armed and sum(self._voiced) >= need:
                self._armed = False
                self._voiced.clear()
                self.canceller.stats.barge_ins += 1
                if self.on_barge_in is not None:
                    try:
                        self.on_barge_in()
                    except Exception:  # a failing callback must not stop the microphone
                        logger.exception("on_barge_in failed")

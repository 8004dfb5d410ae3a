"""The segmenter: VAD frames through a small state machine into :class:`AudioWindow` s.

Each frame gets a level and webrtcvad's voiced call (:mod:`salmonn_agent.stream.vad`). The
states (:class:`VadState`) and what moves between them (:class:`VadEvent`) are listed in
:data:`TRANSITIONS`: ``quiet`` → ``speech`` (enough voiced audio in the start window) or
``sound`` (a frame well above the noise floor) → back to ``quiet`` after a hangover.
``sound`` turns into ``speech`` when speech starts inside it, and a speech candidate the
second stage rejects goes on as a ``sound``. Per-frame measurements (level, noise floor, the
level gates, the sliding voiced count) are computed with numpy for a whole chunk at once;
only the state transitions run per frame in Python, so the segmenter costs little more than
webrtcvad itself.

Every sample pushed ends up in exactly one speech/sound window or in the dropped audio
between them (``periodic`` windows are extra, overlapping copies for monitoring).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from salmonn_agent.audio import SAMPLE_RATE
from salmonn_agent.sound_tags import SoundTag
from salmonn_agent.stream.config import SegmenterConfig
from salmonn_agent.stream.filters import HighPass
from salmonn_agent.stream.spectral import speech_score
from salmonn_agent.stream.tagging import PATCH, EventScores, shared_tagger
from salmonn_agent.stream.vad import FrameVad, frame_levels_db
from salmonn_agent.stream.windows import (
    SILENT_DB,
    AudioWindow,
    CloseReason,
    WindowKind,
    make_window,
)


class VadState(Enum):
    """What the segmenter is in: no event, a non-speech sound, or a speech candidate."""

    QUIET = "quiet"
    SOUND = "sound"
    SPEECH = "speech"


class VadEvent(Enum):
    """What moves the segmenter from one :class:`VadState` to another."""

    ONSET = "onset"
    """Enough voiced frames in the start window: speech starts."""
    LOUD = "loud"
    """A frame well above the noise floor: a sound starts."""
    NOT_SPEECH = "not_speech"
    """The speech candidate is no speech (too short, or rejected by the second stage) and the
    event goes on: it continues as a sound."""
    END = "end"
    """The event is over: its hangover passed, it was too short to keep, or the input ended,
    stalled or lost audio."""


TRANSITIONS: Mapping[tuple[VadState, VadEvent], VadState] = MappingProxyType({
    (VadState.QUIET, VadEvent.ONSET): VadState.SPEECH,
    (VadState.QUIET, VadEvent.LOUD): VadState.SOUND,
    (VadState.SOUND, VadEvent.ONSET): VadState.SPEECH,
    (VadState.SOUND, VadEvent.END): VadState.QUIET,
    (VadState.SPEECH, VadEvent.NOT_SPEECH): VadState.SOUND,
    (VadState.SPEECH, VadEvent.END): VadState.QUIET,
})
"""Every transition of the segmenter's state machine; no other move is possible."""

_PIECE = 4 * SAMPLE_RATE  # pushes are analysed four seconds at a time at most
_CONTEXT = SAMPLE_RATE  # audio before an event used to estimate the noise spectrum
_MIN_PAUSE = SAMPLE_RATE * 90 // 1000  # a quiet pause this long parts a sound from speech
_LONG_SOUND = SAMPLE_RATE  # a sound this long before speech keeps its own window anyway
_SMOOTH = 3  # frames averaged (in dB) before the noise floor's minimum


class SegmenterStats(BaseModel):
    """Counters over the life of a segmenter (samples at 16 kHz)."""

    model_config = ConfigDict(validate_assignment=False)

    samples_in: int = 0
    """Samples pushed."""
    samples_in_windows: int = 0
    """Samples inside speech and sound windows."""
    gap_samples: int = 0
    """Samples the source lost (see :meth:`Segmenter.skip`); not part of ``samples_in``."""
    windows: dict[str, int] = Field(default_factory=lambda: {"speech": 0, "sound": 0, "periodic": 0})
    """Windows emitted, by kind."""
    rejected_speech: int = 0
    """Speech candidates turned into sound (too short, or not confirmed)."""

    @property
    def dropped_samples(self) -> int:
        """Samples pushed but in no speech/sound window (silence, dropped short events)."""
        return self.samples_in - self.samples_in_windows


class _Ring:
    """A circular float32 buffer addressed by absolute sample index."""

    def __init__(self, capacity: int) -> None:
        self.buf = np.zeros(capacity, dtype=np.float32)
        self.capacity = capacity
        self.end = 0

    @property
    def oldest(self) -> int:
        return max(0, self.end - self.capacity)

    def write(self, x: np.ndarray) -> None:
        n, cap = x.size, self.capacity
        i = self.end % cap
        first = min(n, cap - i)
        self.buf[i : i + first] = x[:first]
        if first < n:
            self.buf[: n - first] = x[first:]
        self.end += n

    def skip(self, n: int) -> None:
        if n >= self.capacity:
            self.buf[:] = 0.0
            self.end += n
        else:
            self.write(np.zeros(n, dtype=np.float32))

    def read(self, a: int, b: int, copy: bool = True) -> np.ndarray:
        """Samples [a, b) (a view when ``copy`` is False and they do not wrap around)."""
        if a < self.oldest or b > self.end or a > b:
            raise ValueError(f"ring read [{a}, {b}) outside [{self.oldest}, {self.end})")
        cap = self.capacity
        i, j = a % cap, b % cap
        if b == a:
            return np.zeros(0, dtype=np.float32)
        if i < j or j == 0:
            view = self.buf[i : (j or cap)]
            return view.copy() if copy else view
        return np.concatenate([self.buf[i:], self.buf[:j]])


def _sliding_min(a: np.ndarray, w: int) -> np.ndarray:
    """``out[i] = a[i : i + w].min()`` for every full window, in O(len(a)) (van Herk/Gil-Werman)."""
    n = a.size
    blocks = np.concatenate([a, np.full((-n) % w, np.inf)]).reshape(-1, w)
    prefix = np.minimum.accumulate(blocks, axis=1).ravel()
    suffix = np.minimum.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    m = n - w + 1
    return np.minimum(suffix[:m], prefix[w - 1 : w - 1 + m])


class Segmenter:
    """Cuts a 16 kHz mono stream into ``speech``, ``sound`` and ``periodic`` windows.

    Feed it with :meth:`push` (any chunk size); each call returns the windows completed by
    that audio. :meth:`finish` closes the stream (the open event becomes a last window),
    :meth:`flush` closes the open event now (the watchdog uses it when audio stops coming),
    and :meth:`skip` records a hole in the input (a microphone overflow).
    """

    def __init__(self, config: SegmenterConfig | None = None, tagger: Any = None) -> None:
        """``tagger``: a loaded :class:`~salmonn_agent.sound_tags.SoundTagger` to use when the
        config needs one (else one shared per process is loaded, fetching its model on first
        use)."""
        cfg = config or SegmenterConfig()
        self.config = cfg
        self._vad = FrameVad(cfg.vad_mode)

        def ms(v: float) -> int:
            return int(round(v * SAMPLE_RATE / 1000))

        fm = cfg.frame_ms
        self._flen = ms(fm)
        self._win_frames = max(1, round(cfg.start_window_ms / fm))
        self._start_frames = min(self._win_frames, max(1, math.ceil(cfg.start_voiced_ms / fm)))
        self._hang = ms(cfg.hangover_ms)
        self._pause = ms(cfg.pause_ms) if cfg.pause_ms else 0
        self._settle = ms(cfg.settle_ms) if cfg.settle_ms else 0
        self._sound_hang = ms(cfg.sound_hangover_ms)
        self._pre = ms(cfg.pre_roll_ms)
        self._post = ms(cfg.post_roll_ms)
        self._max_win = int(round(cfg.max_window_s * SAMPLE_RATE))
        self._min_speech = ms(cfg.min_speech_ms)
        self._min_sound = ms(cfg.min_sound_ms)
        self._floor_frames = max(2, round(cfg.noise_floor_window_s * 1000 / fm))
        self._every = int(round(cfg.periodic_every_s * SAMPLE_RATE)) if cfg.periodic_every_s else 0
        self._periodic_len = int(round(cfg.periodic_length_s * SAMPLE_RATE))
        # frames of history kept for the start window and the onset refinement
        self._hist = self._win_frames + math.ceil(self._pre / self._flen) + 2
        capacity = (
            max(self._max_win, self._periodic_len) + self._pre + self._hang + self._sound_hang
            + _CONTEXT + _PIECE + 2 * SAMPLE_RATE
        )
        self._ring = _Ring(capacity)
        # the VAD's (high-passed) input, kept until it is framed
        self._vad_ring = _Ring(_PIECE + 2 * self._flen)
        self._highpass = HighPass(cfg.highpass_hz) if cfg.highpass_hz else None
        self._scores: EventScores | None = None
        self._prefix_scores: EventScores | None = None
        if cfg.uses_tagger:
            tagger = tagger if tagger is not None else shared_tagger()
            self._scores, self._prefix_scores = EventScores(tagger), EventScores(tagger)
        self._labels_k = cfg.labels_k
        # YAMNet judges a speech candidate patch by patch while it goes on: one that is clearly
        # something else (music, an alarm, a dog) becomes a sound at once, so speech right
        # after it opens its own window
        self._early = cfg.confirm_with == "yamnet" and cfg.sound_events
        # a sound that came before the open speech candidate: (window start, event start,
        # event end, noise floor, voiced frames); the candidate's window starts at self._cut
        self._prefix: tuple[int, int, int, float, int] | None = None
        self._cut = 0
        self._verdict: tuple[float | None, float | None] = (None, None)
        self._confirmer: Any = None
        if cfg.confirm_with == "silero":
            from salmonn_agent.stream.confirm import SileroConfirmer

            self._confirmer = SileroConfirmer(cfg.silero_threshold, cfg.silero_min_speech_ms)
        self.stats = SegmenterStats()
        self._pos = 0  # samples received (absolute, gaps included)
        self._framed = 0  # next frame starts here
        self._barrier = 0  # no speech/sound window may start before this
        self._periodic_barrier = 0
        self._floor: float | None = None
        self._h_floor = np.full(self._floor_frames - 1, np.inf)
        self._h_raw = np.full(_SMOOTH - 1, np.inf)
        self._h_level = np.full(self._hist, SILENT_DB)
        self._h_voiced = np.zeros(self._hist, dtype=bool)
        self._state = VadState.QUIET
        self._win_start = 0
        self._onset = 0
        self._last = 0
        self._paused_at = -1  # the event end a pause window was last emitted for
        self._settled_at = -1  # the event end a settled pause window was last considered for
        self._ev_voiced = 0
        self._ev_floor = 0.0
        self._sound_onset = 0
        self._silero_pos = 0
        self._index = 0
        self._voiced_total = 0
        self._snapshots: deque[tuple[int, int]] = deque([(0, 0)])
        self._next_periodic = self._every

    # ------------------------------------------------------------------ public API

    @property
    def position(self) -> float:
        """Stream time in seconds: the end of the audio received so far (gaps included)."""
        return self._pos / SAMPLE_RATE

    @property
    def position_samples(self) -> int:
        """Stream position in samples (the next pushed sample's index)."""
        return self._pos

    @property
    def state(self) -> str:
        """``quiet``, ``speech`` or ``sound``."""
        return self._state.value

    @property
    def in_event(self) -> bool:
        """True while a speech or sound event is open."""
        return self._state is not VadState.QUIET

    @property
    def noise_floor_db(self) -> float | None:
        """The current noise floor estimate (dBFS per frame), None before the first frame."""
        return self._floor

    def push(self, samples: np.ndarray) -> list[AudioWindow]:
        """Add 16 kHz mono float32 samples; return the windows they completed."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        out: list[AudioWindow] = []
        for a in range(0, x.size, _PIECE):
            piece = x[a : a + _PIECE]
            self._ring.write(piece)
            self._vad_ring.write(self._highpass(piece) if self._highpass is not None else piece)
            self._pos += piece.size
            self.stats.samples_in += piece.size
            self._analyse(out)
            if self._every:
                self._periodic(out)
        return out

    def skip(self, n_samples: int) -> list[AudioWindow]:
        """Record that ``n_samples`` of input were lost: close the open event, jump ahead."""
        out: list[AudioWindow] = []
        if n_samples <= 0:
            return out
        self._close(out, "gap", self._pos)
        self._ring.skip(n_samples)
        self._vad_ring.skip(n_samples)
        if self._highpass is not None:
            self._highpass = HighPass(self.config.highpass_hz or 100.0)
        self._pos += n_samples
        self._framed = self._barrier = self._periodic_barrier = self._pos
        self._h_level[:] = SILENT_DB
        self._h_voiced[:] = False
        self._h_floor[:] = np.inf
        self._h_raw[:] = np.inf
        self.stats.gap_samples += n_samples
        return out

    def flush(self, reason: CloseReason = "stalled") -> list[AudioWindow]:
        """Close the open event now (e.g. the stream stalled) and return its window."""
        out: list[AudioWindow] = []
        self._close(out, reason, self._framed)
        return out

    def finish(self) -> list[AudioWindow]:
        """End of stream: close the open event, with the trailing partial frame."""
        out: list[AudioWindow] = []
        self._close(out, "end_of_stream", self._pos)
        return out

    # ------------------------------------------------------------------ analysis

    def _analyse(self, out: list[AudioWindow]) -> None:
        flen = self._flen
        n = (self._pos - self._framed) // flen
        if n <= 0:
            return
        cfg = self.config
        base = self._framed
        frames = self._vad_ring.read(base, base + n * flen, copy=False).reshape(n, flen)
        level = frame_levels_db(frames)
        # noise floor: the quietest frame of the last `noise_floor_window_s` (minimum statistics)
        # of levels smoothed over `_SMOOTH` frames, so that the dips of a fluctuating noise do
        # not pull the floor far under the noise's typical level
        raw = np.concatenate([self._h_raw, level])
        self._h_raw = raw[-(_SMOOTH - 1) :]
        smooth = np.convolve(raw, np.full(_SMOOTH, 1.0 / _SMOOTH), mode="valid")
        span = np.concatenate([self._h_floor, smooth])
        floor = _sliding_min(span, self._floor_frames)
        self._h_floor = span[span.size - self._floor_frames + 1 :]
        self._floor = float(floor[-1])
        audible = level >= cfg.min_level_db
        loud = audible & (level >= floor + cfg.sound_margin_db)
        # webrtcvad only hears frames that pass the level gates: the others could never count
        # as voiced, and in a quiet room they are most of the stream
        gated = np.flatnonzero(audible & (level >= floor + cfg.speech_margin_db))
        voiced = np.zeros(n, dtype=bool)
        if gated.size:
            voiced[gated] = self._vad.classify(frames[gated])
        hist, win = self._hist, self._win_frames
        all_voiced = np.concatenate([self._h_voiced, voiced])
        all_level = np.concatenate([self._h_level, level])
        csum = np.cumsum(all_voiced)
        start_ok = (csum[hist:] - csum[hist - win : hist - win + n]) >= self._start_frames
        n_voiced = int(np.count_nonzero(voiced))

        quiet, speech = VadState.QUIET, VadState.SPEECH
        if self._state is quiet:
            trigger = start_ok | loud if cfg.sound_events else start_ok
            if not trigger.any():  # the common case: nothing happens in this chunk
                self._done_frames(n, all_voiced, all_level, n_voiced)
                return
        sl = start_ok.tolist()
        vl = voiced.tolist()
        ll = loud.tolist()
        sound_on = cfg.sound_events
        hang, sound_hang, max_win, pause = self._hang, self._sound_hang, self._max_win, self._pause
        settle = self._settle
        early = self._early and self._scores
        k = 0
        while k < n:
            state = self._state
            end = base + (k + 1) * flen
            if state is quiet:
                if sl[k]:
                    self._open_speech(out, k, base, all_voiced, all_level, float(floor[k]))
                elif sound_on and ll[k]:
                    self._open_sound(k, base, float(floor[k]))
                k += 1
                continue
            if state is speech:
                if vl[k]:
                    self._last = end
                    self._ev_voiced += 1
                elif end - self._last >= hang:
                    self._close(out, "end_of_speech", end)
                    k += 1
                    continue
                elif pause and end - self._last >= pause and self._paused_at != self._last:
                    self._emit_pause(out, end)
                elif settle and end - self._last >= settle and self._settled_at != self._last:
                    self._emit_pause(out, end, settled=True)
                if early and not self._scores.settled and end >= self._scores.next + PATCH:
                    self._check_candidate(end)
            else:  # SOUND
                if sl[k]:
                    self._open_speech(out, k, base, all_voiced, all_level, float(floor[k]))
                elif ll[k] or vl[k]:
                    self._last = end
                    if vl[k]:
                        self._ev_voiced += 1
                elif end - self._last >= sound_hang:
                    self._close(out, "end_of_sound", end)
                    k += 1
                    continue
            if end - self._win_start >= max_win:
                self._split(out, end)
            k += 1
        self._done_frames(n, all_voiced, all_level, n_voiced)

    def _done_frames(
        self, n: int, all_voiced: np.ndarray, all_level: np.ndarray, n_voiced: int
    ) -> None:
        self._h_voiced = all_voiced[-self._hist :]
        self._h_level = all_level[-self._hist :]
        self._framed += n * self._flen
        self._voiced_total += n_voiced
        if self._every:
            self._snapshots.append((self._framed, self._voiced_total))
        if self._confirmer is not None and self._state is VadState.SPEECH and self._framed > self._silero_pos:
            self._confirmer.feed(self._ring.read(self._silero_pos, self._framed))
            self._silero_pos = self._framed
        if self._scores is not None and self._state is not VadState.QUIET:
            # YAMNet patches as they complete; a sound's are spread out (labels only need a few)
            sparse = self._state is VadState.SOUND and self._labels_k > 0
            self._scores.feed(self._ring.read, self._framed, skip=sparse)

    # ------------------------------------------------------------------ events

    def _move(self, event: VadEvent) -> None:
        """Take the transition ``event`` makes from the current state (see :data:`TRANSITIONS`)."""
        self._state = TRANSITIONS[self._state, event]

    def _open_speech(
        self,
        out: list[AudioWindow],
        k: int,
        base: int,
        all_voiced: np.ndarray,
        all_level: np.ndarray,
        floor_db: float,
    ) -> None:
        flen, hist = self._flen, self._hist
        first = hist + k - self._win_frames + 1
        j = first + int(np.argmax(all_voiced[first : hist + k + 1]))  # earliest voiced frame
        # refine the onset backwards over frames that stand out of the noise (soft onsets)
        cfg = self.config
        gate = max(floor_db + cfg.speech_margin_db, cfg.min_level_db)
        limit = max(self._barrier, self._ring.oldest)
        while j > 0 and all_level[j - 1] >= gate and base + (j - 1 - hist) * flen >= limit:
            j -= 1
        onset = max(base + (j - hist) * flen, self._barrier)
        voiced_so_far = int(np.count_nonzero(all_voiced[j : hist + k + 1]))
        end = base + (k + 1) * flen
        self._prefix = None
        if self._state is VadState.SOUND:
            # the sound before the speech keeps its own window when a pause parts them, or
            # when it lasted a while (speech over a sound): the candidate's window starts at
            # the sound's last loud frame or one pre-roll before the onset, whichever is later
            cut = onset - self._pre
            loud_gate = floor_db + cfg.sound_margin_db
            loud_end = None
            for i in range(j - 1, max(j - 1 - self._pre // flen, -1), -1):
                if all_level[i] >= loud_gate:
                    loud_end = base + (i + 1 - hist) * flen
                    cut = max(cut, loud_end)
                    break
            cut = min(cut, onset)
            parted = loud_end is None or onset - loud_end >= _MIN_PAUSE
            if (parted or onset - self._sound_onset >= _LONG_SOUND) and cut - self._sound_onset >= flen:
                self._prefix = (
                    self._win_start, self._sound_onset, min(self._last, cut), self._ev_floor,
                    self._ev_voiced,
                )
                self._cut = cut
                if self._scores is not None and self._prefix_scores is not None:
                    self._prefix_scores, self._scores = self._scores, self._prefix_scores
            # else: the sound is the speech's own start (a breath, a fricative): one window
        else:
            self._win_start = max(onset - self._pre, self._barrier, self._ring.oldest)
            self._ev_floor = floor_db
        if self._scores is not None and (self._state is not VadState.SOUND or self._prefix is not None):
            self._scores.reset(onset)
            if self._prefix is not None and self._prefix_scores is not None:
                # continue the sound's patch grid: audio it already scored is not scored twice
                self._scores.next = max(onset, min(self._prefix_scores.next, end))
        self._move(VadEvent.ONSET)
        self._onset = onset
        self._last = end
        self._ev_voiced = voiced_so_far
        if self._confirmer is not None:
            self._confirmer.reset()
            self._silero_pos = self._cut if self._prefix is not None else self._win_start

    def _open_sound(self, k: int, base: int, floor_db: float) -> None:
        onset = base + k * self._flen
        self._verdict = (None, None)
        self._move(VadEvent.LOUD)
        self._onset = self._sound_onset = onset
        self._last = onset + self._flen
        self._win_start = max(onset - self._pre, self._barrier, self._ring.oldest)
        self._ev_floor = floor_db
        self._ev_voiced = 0
        if self._scores is not None:
            self._scores.reset(onset)

    def _check_candidate(self, end: int) -> None:
        """Score the candidate's completed patches; turn it into a sound if none was speech."""
        scores = self._scores
        assert scores is not None
        scores.feed(self._ring.read, end)
        speech, event = scores.speech_and_event()
        cfg = self.config
        if speech >= cfg.tag_speech_threshold and speech + cfg.tag_event_margin >= event:
            # a patch is clearly speech: the verdict is speech (a later patch cannot undo it),
            # so the rest of the utterance costs no more patches
            scores.settled = True
        elif event >= cfg.tag_speech_threshold and event > speech + cfg.tag_event_margin:
            self.stats.rejected_speech += 1
            self._merge_prefix()
            self._move(VadEvent.NOT_SPEECH)
            self._sound_onset = self._onset

    def _finish_scores(self, onset: int, event_end: int, now: int) -> EventScores | None:
        """The open event's YAMNet scores, its last patches scored (None without a tagger)."""
        scores = self._scores
        if scores is None:
            return None
        lo = max(self._cut if self._prefix else self._win_start, self._ring.oldest)
        scores.feed(self._ring.read, event_end)
        scores.finish(self._ring.read, onset, event_end, max(lo, self._barrier), now)
        return scores

    def _classify(
        self, onset: int, event_end: int, now: int
    ) -> tuple[WindowKind, float | None, float | None]:
        """Confirm a speech candidate; return (kind, speech_score, speech_prob)."""
        cfg = self.config
        if cfg.confirm_with == "none":
            return "speech", None, None
        if cfg.confirm_with == "yamnet":
            scores = self._finish_scores(onset, event_end, now)
            assert scores is not None
            speech, event = scores.speech_and_event()
            ok = scores.settled or (
                speech >= cfg.tag_speech_threshold and speech + cfg.tag_event_margin >= event
            )
            return ("speech" if ok else "sound"), None, round(speech, 4)
        if cfg.confirm_with == "silero":
            if self._silero_pos < event_end:
                self._confirmer.feed(self._ring.read(self._silero_pos, event_end))
                self._silero_pos = event_end
            ok, prob = self._confirmer.verdict()
            return ("speech" if ok else "sound"), None, prob
        ctx_start = max(onset - _CONTEXT, self._ring.oldest, self._periodic_barrier)
        score = speech_score(
            self._ring.read(onset, event_end), self._ev_floor, self._ring.read(ctx_start, onset)
        )
        return ("speech" if score >= cfg.min_speech_score else "sound"), score, None

    def _labels(self, onset: int, event_end: int, now: int) -> tuple[SoundTag, ...]:
        if not self._labels_k:
            return ()
        scores = self._finish_scores(onset, event_end, now)
        return scores.top(self._labels_k, self.config.label_min_score) if scores else ()

    def _emit_prefix(self, out: list[AudioWindow], now: int) -> None:
        """Emit the sound that came before the speech candidate as its own window."""
        assert self._prefix is not None
        start, onset, event_end, floor_db, voiced = self._prefix
        tags: tuple[SoundTag, ...] = ()
        scores = self._prefix_scores
        if self._labels_k and scores is not None:
            scores.feed(self._ring.read, event_end)
            scores.finish(self._ring.read, onset, event_end, max(start, self._ring.oldest), self._cut)
            tags = scores.top(self._labels_k, self.config.label_min_score)
        self._emit(out, start, self._cut, "sound", onset, event_end, "end_of_sound", floor_db,
                   voiced, now, tags=tags)
        self._prefix = None
        self._win_start = self._cut

    def _merge_prefix(self) -> None:
        """The candidate after the sound was no speech: the two are one sound event."""
        if self._prefix is None:
            return
        self._onset = self._prefix[1]
        self._ev_voiced += self._prefix[4]
        if self._scores is not None and self._prefix_scores is not None:
            self._scores.merge(self._prefix_scores)
        self._prefix = None

    def _close(self, out: list[AudioWindow], reason: CloseReason, now: int) -> None:
        state = self._state
        if state is VadState.QUIET:
            return
        onset, event_end = self._onset, min(self._last, now)
        score = prob = None
        if state is VadState.SPEECH:
            if event_end - onset < self._min_speech:
                kind: WindowKind = "sound"
            else:
                kind, score, prob = self._classify(onset, event_end, now)
            if kind == "sound":
                self.stats.rejected_speech += 1
                if not self.config.sound_events:
                    if self._prefix is not None:
                        self._emit_prefix(out, now)
                    self._move(VadEvent.END)
                    return
                self._merge_prefix()
                onset = self._onset
                if reason == "end_of_speech" and now - self._last < self._sound_hang:
                    # no speech: the event goes on as a sound, which may come back (a burst)
                    self._move(VadEvent.NOT_SPEECH)
                    self._sound_onset = onset
                    self._verdict = (score, prob)
                    return
            elif self._prefix is not None:
                self._emit_prefix(out, now)
        else:
            kind = "sound"
            score, prob = self._verdict  # a rejected candidate's, if it became this sound
            if event_end - onset < self._min_sound:
                self._move(VadEvent.END)
                return
        self._move(VadEvent.END)
        tags = self._labels(onset, event_end, now)
        if reason == "end_of_speech" and kind == "sound":
            reason = "end_of_sound"
        win_end = min(event_end + self._post, now)
        self._emit(
            out, self._win_start, win_end, kind, onset, event_end, reason, self._ev_floor,
            self._ev_voiced, now, score=score, prob=prob, tags=tags,
        )

    def _emit_pause(self, out: list[AudioWindow], now: int, settled: bool = False) -> None:
        """Speech paused for ``pause_ms``: emit what the speech window would hold if it ended
        now (same samples, same index), leaving the event open. Not confirmed by the second
        stage: the ``speech`` window that follows (or not) decides. ``settled`` (``settle_ms``
        of silence): the same window again, emitted only when the second stage confirms the
        speech so far, as it would confirm a window that ends here."""
        if settled:
            self._settled_at = self._last
        else:
            self._paused_at = self._last
        if self._last - self._onset < self._min_speech:
            return
        if settled and self._confirms_so_far(now) != "speech":
            return
        start = self._cut if self._prefix is not None else self._win_start
        window = make_window(
            self._ring.read(start, self._last + self._post), start, "pause",
            event=(self._onset, self._last), emitted_at=now,
            index=self._index + (self._prefix is not None), reason="settled" if settled else "pause",
            noise_floor_db=self._ev_floor,
            voiced_ratio=min(1.0, self._ev_voiced * self._flen / max(self._last - self._onset, 1)),
        )
        out.append(window)
        counted = "settled" if settled else "pause"
        self.stats.windows[counted] = self.stats.windows.get(counted, 0) + 1

    def _confirms_so_far(self, now: int) -> WindowKind:
        """The second stage's verdict on the open speech as if it ended now, leaving the event's
        scores as they were: the event may go on, and its window must be scored as if this look
        had not happened (an extra patch would change its tags)."""
        scores = self._scores
        if scores is None:
            return self._classify(self._onset, self._last, now)[0]
        state = scores.snapshot()
        try:
            return self._classify(self._onset, self._last, now)[0]
        finally:
            scores.restore(state)

    def _split(self, out: list[AudioWindow], end: int) -> None:
        """The open window reached max_window_s: emit it and continue the event."""
        if self._prefix is not None:  # the sound before the candidate goes first
            self._emit_prefix(out, end)
            if end - self._win_start < self._max_win:
                return
        cut = self._win_start + self._max_win
        onset = min(self._onset, cut)
        event_end = min(self._last, cut)
        score = prob = None
        kind: WindowKind = "sound"
        if self._state is VadState.SPEECH:
            kind, score, prob = self._classify(onset, event_end, end)
        tags = self._labels(onset, event_end, end)
        self._emit(
            out, self._win_start, cut, kind, onset, event_end, "max_length", self._ev_floor,
            self._ev_voiced, end, score=score, prob=prob, split=True, tags=tags,
        )
        self._win_start = self._onset = cut
        if self._state is VadState.SOUND:
            self._sound_onset = cut
        self._ev_voiced = 0
        if self._scores is not None:
            self._scores.reset(cut)
        if self._confirmer is not None and self._state is VadState.SPEECH:
            self._confirmer.reset()  # the next window is judged on its own audio
            self._silero_pos = cut

    def _emit(
        self,
        out: list[AudioWindow],
        start: int,
        end: int,
        kind: WindowKind,
        event_start: int,
        event_end: int,
        reason: CloseReason,
        floor_db: float,
        voiced_frames: int,
        now: int,
        *,
        score: float | None = None,
        prob: float | None = None,
        split: bool = False,
        tags: tuple[SoundTag, ...] = (),
    ) -> None:
        window = make_window(
            self._ring.read(start, end), start, kind, event=(event_start, event_end), emitted_at=now,
            index=self._index, reason=reason, noise_floor_db=floor_db,
            voiced_ratio=min(1.0, voiced_frames * self._flen / max(event_end - event_start, 1)),
            speech_score=score, speech_prob=prob, split=split, tags=tags,
        )
        out.append(window)
        self._index += 1
        self.stats.windows[kind] += 1
        if kind != "periodic":
            self.stats.samples_in_windows += end - start
            self._barrier = end

    def _periodic(self, out: list[AudioWindow]) -> None:
        while self._every and self._pos >= self._next_periodic:
            tick = self._next_periodic
            self._next_periodic += self._every
            start = max(tick - self._periodic_len, self._periodic_barrier, self._ring.oldest)
            if tick - start < self._flen:
                continue
            snaps = self._snapshots
            while len(snaps) > 1 and snaps[1][0] <= start:
                snaps.popleft()
            v0 = snaps[0][1]
            v1 = self._voiced_total
            floor = self._floor if self._floor is not None else SILENT_DB
            self._emit(out, start, tick, "periodic", start, tick, "periodic", floor, v1 - v0, self._pos)


def segment(samples: np.ndarray, config: SegmenterConfig | None = None) -> list[AudioWindow]:
    """Segment a whole 16 kHz mono array at once (push everything, then finish)."""
    seg = Segmenter(config)
    return seg.push(samples) + seg.finish()

"""The front-end's AudioSet stage: YAMNet scores over each event, speech or not, and labels.

webrtcvad calls most harmonic sounds speech (animals, alarms, music); YAMNet, trained on
AudioSet's 521 classes, tells them apart and names them. :class:`EventScores` keeps, for the
open event, the highest score of each class over YAMNet's 0.96 s patches. The segmenter feeds
it while the event goes on (one patch per patch length of audio), so closing an event costs
one or two patches at most, whatever its length.

A speech candidate is confirmed when the best speech-class score (``Speech``, child speech,
conversation, narration, babbling, synthesized speech, whispering) reaches
``SegmenterConfig.tag_speech_threshold`` and is not beaten by a non-speech event class by
more than ``tag_event_margin`` (a dog that YAMNet also finds faintly speech-like stays a dog).
Patches follow each other without overlap (YAMNet's own hop is half a patch): half the cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from salmonn_agent.sound_tags import HOP, NON_EVENTS, PATCH_FRAMES, PATCH_HOP_FRAMES, WINDOW, SoundTag

PATCH = WINDOW + (PATCH_FRAMES - 1) * HOP  # 15,600 samples: 0.975 s of audio per patch
PATCH_HOP = PATCH_HOP_FRAMES * HOP  # 7,680 samples: YAMNet's own hop, 0.48 s
SPEECH_CLASSES = (
    "Speech", "Child speech, kid speaking", "Conversation", "Narration, monologue", "Babbling",
    "Speech synthesizer", "Whispering",
)
"""AudioSet classes that count as speech when confirming a candidate."""

_TARGET_RMS = 10 ** (-30 / 20)
_MAX_GAIN = 10 ** (50 / 20)
_TAGGERS: dict[str, Any] = {}


def shared_tagger(cache_dir: str | None = None) -> Any:
    """One :class:`~salmonn_agent.sound_tags.SoundTagger` per process and cache (loads once)."""
    key = cache_dir or ""
    if key not in _TAGGERS:
        from salmonn_agent.sound_tags import SoundTagger

        _TAGGERS[key] = SoundTagger.load(cache_dir)
    return _TAGGERS[key]


class EventScores:
    """Highest YAMNet class scores over the patches of one event, fed as audio arrives."""

    def __init__(self, tagger: Any, hop: int = PATCH) -> None:
        """``hop``: samples between patch starts (default: one patch, no overlap, half the
        cost of YAMNet's 0.48 s hop for the same coverage)."""
        self.tagger = tagger
        self.hop = hop
        labels = list(tagger.labels)
        self.speech_index = np.array([labels.index(c) for c in SPEECH_CLASSES if c in labels])
        skip = set(SPEECH_CLASSES) | set(NON_EVENTS)
        self.event_index = np.array([i for i, c in enumerate(labels) if c not in skip])
        self.best: np.ndarray | None = None
        self.next = 0  # absolute sample where the next patch starts
        self.patches = 0
        self.settled = False  # the verdict is known: no more patches are needed

    def reset(self, start: int) -> None:
        """Forget the scores; the next patch starts at sample ``start``."""
        self.best = None
        self.next = start
        self.patches = 0
        self.settled = False

    def snapshot(self) -> tuple[np.ndarray | None, int, int, bool]:
        """The scores so far, for :meth:`restore` after a look that must leave no trace."""
        return (None if self.best is None else self.best.copy()), self.next, self.patches, self.settled

    def restore(self, state: tuple[np.ndarray | None, int, int, bool]) -> None:
        """Go back to a :meth:`snapshot`."""
        self.best, self.next, self.patches, self.settled = state

    def add(self, scores: np.ndarray) -> None:
        """Merge one patch's (or another event's) class scores."""
        self.best = scores.copy() if self.best is None else np.maximum(self.best, scores)

    def merge(self, other: "EventScores") -> None:
        """Take the other event's scores too (a sound and the candidate after it become one)."""
        if other.best is not None:
            self.add(other.best)
            self.patches += other.patches

    def score(self, audio: np.ndarray) -> np.ndarray:
        """Class scores of one patch of audio, brought up to at least -30 dBFS RMS first
        (at most +50 dB): YAMNet's log-mel offset hides faint audio the level gates let in."""
        rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
        if 0.0 < rms < _TARGET_RMS:
            audio = audio * min(_TARGET_RMS / rms, _MAX_GAIN)
        return self.tagger.scores(audio)[0]

    def feed(self, read: Any, upto: int, skip: bool = False) -> None:
        """Score every patch that starts at ``self.next`` and ends by ``upto``.

        ``read(a, b)`` returns the stream's samples ``[a, b)``. ``skip``: score every other
        patch only (a long sound's labels need no more; half the cost).
        """
        while self.next + PATCH <= upto and not self.settled:
            self.add(self.score(read(self.next, self.next + PATCH)))
            self.next += self.hop * (2 if skip and self.patches else 1)
            self.patches += 1


    def finish(self, read: Any, onset: int, end: int, lo: int, hi: int) -> None:
        """Score the event ``[onset, end)`` to its end: the last patch ends at ``end``; an event
        no patch covered yet gets one patch centred on it. ``[lo, hi)`` is the audio available
        (a patch never reaches before ``lo``, the previous window's end, or past ``hi``)."""
        if self.settled or (self.patches and self.next - self.hop + PATCH >= end):
            return
        if self.patches:
            a = max(end - PATCH, lo)
        else:
            a = max(min((onset + end - PATCH) // 2, hi - PATCH), lo)
        b = min(a + PATCH, hi)
        if b > a:
            self.add(self.score(read(a, b)))
            self.patches += 1

    def speech_and_event(self) -> tuple[float, float]:
        """(best speech-class score, best non-speech event-class score); zeros when unscored."""
        if self.best is None:
            return 0.0, 0.0
        return float(self.best[self.speech_index].max()), float(self.best[self.event_index].max())

    def top(self, k: int, min_score: float = 0.1) -> tuple[SoundTag, ...]:
        """The ``k`` best event classes (no speech, silence or room classes) at ``min_score``+."""
        if self.best is None or k <= 0:
            return ()
        scores = self.best[self.event_index]
        order = np.argsort(-scores)[:k]
        labels = self.tagger.labels
        return tuple(
            SoundTag(label=labels[self.event_index[i]], score=round(float(scores[i]), 3))
            for i in order if scores[i] >= min_score
        )

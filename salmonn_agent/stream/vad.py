"""Frame-level voice activity: the level of each VAD frame and webrtcvad's voiced call on it.

The front-end works on frames of 10, 20 or 30 ms of 16 kHz audio
(``SegmenterConfig.frame_ms``). :func:`frame_levels_db` gives their levels and
:class:`FrameVad` asks webrtcvad which of them are voiced; the segmenter
(:mod:`salmonn_agent.stream.segmenter`) turns both into events, and :func:`voiced_fraction`
measures a whole clip without the segmenter's level gates.

webrtcvad is imported when a :class:`FrameVad` is made, not with this module.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any, Callable

import numpy as np

from salmonn_agent.audio import SAMPLE_RATE, power_db
from salmonn_agent.stream.errors import FrontendError

RECORDING_FRAME = 30 * SAMPLE_RATE // 1000
"""Frame length (samples) used to measure a clip as a whole: webrtcvad's longest frame."""


def frame_levels_db(frames: np.ndarray) -> np.ndarray:
    """The mean power of each row of ``frames`` in dBFS."""
    return power_db(np.einsum("ij,ij->i", frames, frames) / frames.shape[1])


class FrameVad:
    """webrtcvad at one aggressiveness (``mode`` 0-3), calling 16 kHz frames voiced or not."""

    def __init__(self, mode: int) -> None:
        """Raises :class:`FrontendError` when webrtcvad is not installed."""
        try:
            import webrtcvad
        except ImportError:
            raise FrontendError(
                "The segmenter needs webrtcvad: `pip install webrtcvad-wheels`."
            ) from None
        self.mode = mode
        self.vad = webrtcvad.Vad(mode)
        self._is_speech = _speech_call(self.vad)

    def classify(self, frames: np.ndarray) -> np.ndarray:
        """Whether webrtcvad calls each row of ``frames`` (float samples in [-1, 1]) voiced."""
        n, flen = frames.shape
        if n == 0:
            return np.zeros(0, dtype=bool)
        pcm = np.clip(frames, -1.0, 1.0)
        pcm = memoryview((pcm * 32767.0).astype(np.int16).tobytes())
        is_speech, bpf = self._is_speech, 2 * flen
        return np.array([is_speech(pcm[i : i + bpf], flen) for i in range(0, n * bpf, bpf)], dtype=bool)


def _speech_call(vad: Any) -> Callable[[memoryview, int], bool]:
    """``is_speech(frame_bytes, n_samples)`` for 16 kHz 16-bit frames.

    Calls webrtcvad's C entry point directly when it is there: ``Vad.is_speech`` is a Python
    wrapper whose overhead is a large part of each call.
    """
    process = getattr(sys.modules.get("_webrtcvad"), "process", None)
    handle = getattr(vad, "_vad", None)
    if process is None or handle is None:  # another webrtcvad build: use the public API
        return lambda frame, length: vad.is_speech(frame, SAMPLE_RATE, length)
    return partial(process, handle, SAMPLE_RATE)


def voiced_fraction(frames: np.ndarray, mode: int) -> float:
    """Share of the rows of ``frames`` webrtcvad calls speech (no level gates); 0.0 for none."""
    if not frames.size:
        return 0.0
    voiced = FrameVad(mode).classify(frames)
    return int(np.count_nonzero(voiced)) / len(voiced)

"""What the front-end emits: :class:`AudioWindow`, a stretch of the stream SALMONN should hear.

:func:`make_window` builds and measures every window the front-end makes: the segmenter's,
and a fixed-length recording's (:func:`recording_window`, used by the ``listen`` tool).

``AudioWindow`` is a frozen dataclass rather than a pydantic model: it carries a numpy array
(which pydantic can only hold as an unchecked arbitrary type) and is built in the segmenter's
hot path, where validation would cost time and check nothing the segmenter has not already
guaranteed. Its JSON-friendly part, :class:`WindowMetrics`, is a pydantic model.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from salmonn_agent.audio import SAMPLE_RATE, amplitude_db, power_db
from salmonn_agent.sound_tags import SoundTag
from salmonn_agent.stream.vad import RECORDING_FRAME, frame_levels_db, voiced_fraction

WindowKind = Literal["speech", "sound", "periodic", "pause"]
"""``speech`` (someone spoke), ``sound`` (a non-speech event), ``periodic`` (monitoring) or
``pause`` (the open speech so far, after a short silence that may end it: see
``SegmenterConfig.pause_ms``; an extra copy, like ``periodic``)."""

CloseReason = Literal[
    "end_of_speech", "end_of_sound", "max_length", "end_of_stream", "stalled", "gap", "periodic", "pause",
    "settled",
]
"""Why a window was closed: silence after the event, the length limit, the end of the input,
no audio for a while (watchdog), a hole in the input (dropped audio), the periodic clock, a
pause in open speech (the event goes on), or a pause long enough that the second stage confirmed
the speech so far (``SegmenterConfig.settle_ms``: a ``pause`` window the turn may end on)."""

SILENT_DB = power_db(0.0)
"""The level of digital silence (dBFS): the floor of every level the front-end measures."""


class WindowMetrics(BaseModel):
    """Measurements of one window (levels in dBFS)."""

    model_config = ConfigDict(frozen=True)

    reason: CloseReason
    voiced_ratio: float
    """Share of the event's VAD frames that webrtcvad called speech (after the level gates)."""
    level_db: float
    """RMS level of the whole window."""
    peak_db: float
    """Peak sample level of the window."""
    noise_floor_db: float
    """The adaptive noise floor when the event began."""
    snr_db: float
    """RMS level of the event part over the noise floor."""
    speech_score: float | None = None
    """Spectral-change score (dB) when the built-in confirmation ran."""
    speech_prob: float | None = None
    """Highest speech probability of the confirmation stage: Silero's, or YAMNet's best
    speech-class score (over its 0.96 s patches) when ``confirm_with='yamnet'``."""
    split: bool = False
    """True when the window was cut at ``max_window_s`` and the event goes on in the next one."""


@dataclass(frozen=True, slots=True)
class AudioWindow:
    """A window of 16 kHz mono audio with its place in the stream and what it holds.

    ``tags`` names what a sound window holds ("Dog 0.91, Bark 0.77") when a tagger ran.

    ``start``/``end`` (seconds since the stream began) bound the samples; ``event_start`` and
    ``event_end`` bound the detected speech or sound inside them (the window adds pre-roll and
    post-roll around the event). ``emitted_at`` is the stream time at which the window was
    ready, so ``emitted_at - event_end`` is the end-of-event delay.
    """

    samples: np.ndarray
    sample_rate: int
    start_sample: int
    end_sample: int
    kind: WindowKind
    event_start: float
    event_end: float
    emitted_at: float
    index: int
    metrics: WindowMetrics
    tags: tuple[SoundTag, ...] = ()
    """The event's top AudioSet labels with their scores (best over YAMNet's patches; no
    speech, silence or room classes), when the segmenter runs the tagger (see
    ``SegmenterConfig.sound_labels``); empty otherwise."""

    @property
    def start(self) -> float:
        """Start of the window in seconds of stream time."""
        return self.start_sample / self.sample_rate

    @property
    def end(self) -> float:
        """End of the window (exclusive) in seconds of stream time."""
        return self.end_sample / self.sample_rate

    @property
    def duration(self) -> float:
        """Length of the window in seconds."""
        return (self.end_sample - self.start_sample) / self.sample_rate

    def to_dict(self) -> dict[str, Any]:
        """The window without its samples, as JSON-ready values (times rounded to 1 ms)."""
        out: dict[str, Any] = {
            "index": self.index,
            "kind": self.kind,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "duration": round(self.duration, 3),
            "event_start": round(self.event_start, 3),
            "event_end": round(self.event_end, 3),
            "emitted_at": round(self.emitted_at, 3),
        }
        for key, value in self.metrics.model_dump().items():
            out[key] = round(value, 3) if isinstance(value, float) else value
        if self.tags:
            out["tags"] = [{"label": t.label, "score": round(t.score, 3)} for t in self.tags]
        return out

    def to_json(self) -> str:
        """One line of JSON (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict())

    def wav_bytes(self) -> bytes:
        """The samples as a 16-bit PCM WAV file in memory."""
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, self.samples, self.sample_rate, format="WAV", subtype="PCM_16")
        return buf.getvalue()

    def save_wav(self, path: str | Path) -> Path:
        """Write the samples as a 16-bit PCM WAV file and return its path."""
        path = Path(path)
        path.write_bytes(self.wav_bytes())
        return path

    def __repr__(self) -> str:
        return (
            f"AudioWindow(#{self.index} {self.kind} {self.start:.2f}-{self.end:.2f}s, "
            f"event {self.event_start:.2f}-{self.event_end:.2f}s, {self.metrics.reason})"
        )


def make_window(
    samples: np.ndarray,
    start_sample: int,
    kind: WindowKind,
    *,
    event: tuple[int, int],
    emitted_at: int,
    index: int,
    reason: CloseReason,
    noise_floor_db: float,
    voiced_ratio: float,
    speech_score: float | None = None,
    speech_prob: float | None = None,
    split: bool = False,
    tags: tuple[SoundTag, ...] = (),
) -> AudioWindow:
    """The window of 16 kHz ``samples`` that starts at stream sample ``start_sample``, measured.

    ``event`` is the detected event's ``[start, end)`` and ``emitted_at`` the moment the window
    is ready, both in stream samples. The levels are measured here: the whole window's RMS and
    peak, and the event's RMS over ``noise_floor_db`` (``snr_db``); the other metrics are
    passed in as the caller measured them.
    """
    event_start, event_end = event
    ev = samples[max(event_start - start_sample, 0) : max(event_end - start_sample, 0)]
    metrics = WindowMetrics(
        reason=reason,
        voiced_ratio=voiced_ratio,
        level_db=power_db(_power(samples)),
        peak_db=amplitude_db(float(np.max(np.abs(samples))) if samples.size else 0.0),
        noise_floor_db=noise_floor_db,
        snr_db=(power_db(_power(ev)) if ev.size else SILENT_DB) - noise_floor_db,
        speech_score=speech_score,
        speech_prob=speech_prob,
        split=split,
    )
    return AudioWindow(
        samples=samples,
        sample_rate=SAMPLE_RATE,
        start_sample=start_sample,
        end_sample=start_sample + samples.size,
        kind=kind,
        event_start=event_start / SAMPLE_RATE,
        event_end=event_end / SAMPLE_RATE,
        emitted_at=emitted_at / SAMPLE_RATE,
        index=index,
        metrics=metrics,
        tags=tags,
    )


def recording_window(samples: np.ndarray, start_sample: int, reason: CloseReason, vad_mode: int) -> AudioWindow:
    """A fixed-length recording of 16 kHz ``samples`` (not empty) as a ``periodic`` window.

    The whole recording is the event. Measured on 30 ms frames: the noise floor is the
    quietest frame, and ``voiced_ratio`` the share of frames webrtcvad (at ``vad_mode``) calls
    speech, without the segmenter's level gates.
    """
    frames = samples[: samples.size // RECORDING_FRAME * RECORDING_FRAME].reshape(-1, RECORDING_FRAME)
    floor = float(frame_levels_db(frames).min()) if frames.size else power_db(_power(samples))
    end_sample = start_sample + samples.size
    return make_window(
        samples, start_sample, "periodic", event=(start_sample, end_sample), emitted_at=end_sample,
        index=0, reason=reason, noise_floor_db=floor, voiced_ratio=voiced_fraction(frames, vad_mode),
    )


def _power(samples: np.ndarray) -> float:
    """Mean power of ``samples`` (0.0 for none)."""
    return float(np.dot(samples, samples)) / max(samples.size, 1)

"""What the front-end emits: :class:`AudioWindow`, a stretch of the stream SALMONN should hear.

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

from salmonn_agent.sound_tags import SoundTag

WindowKind = Literal["speech", "sound", "periodic"]
"""``speech`` (someone spoke), ``sound`` (a non-speech event) or ``periodic`` (monitoring)."""

CloseReason = Literal[
    "end_of_speech", "end_of_sound", "max_length", "end_of_stream", "stalled", "gap", "periodic"
]
"""Why a window was closed: silence after the event, the length limit, the end of the input,
no audio for a while (watchdog), a hole in the input (dropped audio), or the periodic clock."""


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

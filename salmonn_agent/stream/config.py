"""Configuration of the segmenter: what counts as speech or sound, and how windows are cut."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ConfirmMethod = Literal["yamnet", "spectral", "silero", "none"]
"""How a webrtcvad speech candidate is confirmed as speech (else it becomes a ``sound``)."""


class SegmenterConfig(BaseModel):
    """Every knob of :class:`~salmonn_agent.stream.segmenter.Segmenter`; the defaults suit a quiet room.

    Times are in milliseconds (``_ms``) or seconds (``_s``), levels in dBFS (0 dB = full scale).
    Speech starts when at least ``start_voiced_ms`` of the last ``start_window_ms`` are voiced
    (webrtcvad, gated by level), and ends when no voiced frame came for ``hangover_ms``: it is
    hard to start (a dense cluster) and easy to keep (one voiced frame per hangover), which is
    the hysteresis. Each window keeps ``pre_roll_ms`` before the onset and ``post_roll_ms``
    after the end. Loud non-speech audio (``sound_margin_db`` over the adaptive noise floor)
    becomes ``sound`` windows; ``periodic_every_s`` adds overlapping ``periodic`` windows.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    vad_mode: int = Field(2, ge=0, le=3, description="webrtcvad aggressiveness, 0 (lenient) to 3.")
    frame_ms: Literal[10, 20, 30] = Field(30, description="VAD frame length.")
    start_window_ms: int = Field(300, gt=0, description="Sliding window for the speech onset.")
    start_voiced_ms: int = Field(
        150, gt=0, description="Voiced audio needed inside the start window to start speech."
    )
    hangover_ms: int = Field(600, gt=0, description="Silence that ends speech.")
    pause_ms: int | None = Field(
        None, gt=0,
        description=(
            "Emit a `pause` window (the speech so far) after this much silence in open speech, "
            "before hangover_ms ends it, so a voice assistant can start answering early and "
            "keep the answer only if the speech does end (None: never). At least post_roll_ms: "
            "then the `pause` window holds exactly the samples of the `speech` window that "
            "follows when no voiced frame comes back."
        ),
    )
    settle_ms: int | None = Field(
        None, gt=0,
        description=(
            "Emit the `pause` window again after this much silence (reason `settled`), once the "
            "second stage has confirmed the speech so far as it would confirm a window ending "
            "there (no settled window when it calls the event a sound). A consumer that judges "
            "the request complete may end the turn here, and let a request that sounds unfinished "
            "wait for hangover_ms (None: never). At least pause_ms and post_roll_ms, shorter than "
            "hangover_ms."
        ),
    )
    pre_roll_ms: int = Field(400, ge=0, description="Audio kept before the onset.")
    post_roll_ms: int = Field(200, ge=0, description="Audio kept after the end (<= hangover).")
    min_speech_ms: int = Field(
        200, ge=0, description="Shorter speech candidates become sound (or are dropped)."
    )
    max_window_s: float = Field(
        30.0, gt=1.0, le=60.0, description="Longest window; longer events are split (SALMONN: 30 s)."
    )
    min_level_db: float = Field(
        -50.0, le=0.0, description="Volume gate: quieter frames are never speech or sound."
    )
    speech_margin_db: float = Field(
        6.0, ge=0.0, description="Voiced frames must be this far above the noise floor."
    )
    sound_events: bool = Field(True, description="Emit `sound` windows for non-speech events.")
    sound_margin_db: float = Field(
        12.0, gt=0.0, description="A frame this far above the noise floor is a sound."
    )
    sound_hangover_ms: int = Field(
        800, gt=0,
        description=(
            "Quiet that ends a sound event: a burst of one sound with shorter gaps (knocks, "
            "rings, barks, beeps) is one window."
        ),
    )
    min_sound_ms: int = Field(0, ge=0, description="Shorter sound events are dropped.")
    highpass_hz: float | None = Field(
        100.0, gt=0.0, le=400.0,
        description=(
            "High-pass the VAD's input (levels and webrtcvad, not the windows' samples) at this "
            "cutoff, so rumble, fans and hum neither open events nor keep them open (None: off)."
        ),
    )
    noise_floor_window_s: float = Field(
        5.0, gt=0.0, le=60.0,
        description=(
            "The noise floor is the quietest frame of this much recent audio: it falls at once "
            "and rises after a steady sound has lasted this long."
        ),
    )
    confirm_with: ConfirmMethod = Field(
        "yamnet",
        description=(
            "Second stage for speech candidates: 'yamnet' (the AudioSet tagger: speech vs "
            "animals, alarms, music...; its model is fetched on first use), 'spectral' (built "
            "in: spectral change, rejects steady tones, chords, hums and noise), 'silero' "
            "(neural VAD, needs the silero-vad package) or 'none' (trust webrtcvad: the lowest "
            "cost)."
        ),
    )
    tag_speech_threshold: float = Field(
        0.5, gt=0.0, lt=1.0,
        description="confirm_with='yamnet': best speech-class score needed to confirm speech.",
    )
    tag_event_margin: float = Field(
        0.2, ge=0.0, le=1.0,
        description=(
            "confirm_with='yamnet': a non-speech class scoring more than the speech classes by "
            "this much rejects the candidate."
        ),
    )
    sound_labels: int | None = Field(
        None, ge=0, le=10,
        description=(
            "Top AudioSet labels (YAMNet) put on each window's `tags`; 0: none. None: 3 when "
            "confirm_with='yamnet' (the tagger runs anyway), else 0 (a positive value loads "
            "the tagger whatever the confirmation)."
        ),
    )
    label_min_score: float = Field(0.1, ge=0.0, lt=1.0, description="Lowest score of a label.")
    min_speech_score: float = Field(
        2.6, ge=0.0, description="Spectral-change score (dB) needed by confirm_with='spectral'."
    )
    silero_threshold: float = Field(0.5, gt=0.0, lt=1.0, description="Silero speech probability.")
    silero_min_speech_ms: int = Field(
        64, gt=0, description="Audio Silero must call speech to confirm a candidate."
    )
    periodic_every_s: float | None = Field(
        None, gt=0.0, description="Emit a `periodic` window this often (None: never)."
    )
    periodic_length_s: float = Field(10.0, gt=0.0, le=30.0, description="Length of periodic windows.")

    @model_validator(mode="after")
    def _check(self) -> "SegmenterConfig":
        if self.start_voiced_ms > self.start_window_ms:
            raise ValueError(
                f"start_voiced_ms ({self.start_voiced_ms}) cannot exceed start_window_ms "
                f"({self.start_window_ms}): lower it or widen the window."
            )
        if self.post_roll_ms > self.hangover_ms:
            raise ValueError(
                f"post_roll_ms ({self.post_roll_ms}) cannot exceed hangover_ms ({self.hangover_ms}): "
                "the audio after the end is only known once the hangover has passed."
            )
        if self.pause_ms is not None and not self.post_roll_ms <= self.pause_ms < self.hangover_ms:
            raise ValueError(
                f"pause_ms ({self.pause_ms}) must be at least post_roll_ms ({self.post_roll_ms}) and "
                f"shorter than hangover_ms ({self.hangover_ms}): a pause window previews the speech "
                "window that the hangover closes."
            )
        floor = max(self.post_roll_ms, self.pause_ms or 0)
        if self.settle_ms is not None and not floor <= self.settle_ms < self.hangover_ms:
            raise ValueError(
                f"settle_ms ({self.settle_ms}) must be at least post_roll_ms ({self.post_roll_ms}) "
                f"and pause_ms ({self.pause_ms}), and shorter than hangover_ms ({self.hangover_ms}): "
                "a settled window ends the turn before the hangover would."
            )
        if self.pre_roll_ms >= self.max_window_s * 1000:
            raise ValueError("pre_roll_ms must be shorter than max_window_s.")
        return self

    @property
    def labels_k(self) -> int:
        """How many labels each window gets (``sound_labels`` with its default resolved)."""
        if self.sound_labels is None:
            return 3 if self.confirm_with == "yamnet" else 0
        return self.sound_labels

    @property
    def uses_tagger(self) -> bool:
        """Whether the segmenter runs YAMNet (to confirm speech or to label windows)."""
        return self.confirm_with == "yamnet" or self.labels_k > 0

    @classmethod
    def webrtcvad_only(cls, **overrides: object) -> "SegmenterConfig":
        """The cheapest front-end: webrtcvad and the level gates; no high-pass, no second
        stage, no labels (speech is whatever webrtcvad calls speech)."""
        return cls(**{"confirm_with": "none", "sound_labels": 0, "highpass_hz": None, **overrides})

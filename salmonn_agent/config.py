"""Configuration: the official SALMONN YAML files and our own model/generation configs.

Two shapes live here:

* :class:`OfficialConfig` mirrors ``configs/decode_config.yaml`` (and ``config.yaml``) of
  bytedance/SALMONN field for field, so the official files load as they are.
* :class:`SALMONNConfig` is our own architecture description, stored as JSON by
  ``save_pretrained``; :meth:`SALMONNConfig.from_official` translates the official one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from salmonn_agent.errors import ConfigError, format_validation_error

OFFICIAL_PROMPT_TEMPLATE = "USER: {}\nASSISTANT:"
AUDIO_PLACEHOLDER = "<SpeechHere>"
"""Marks where the audio tokens go in a prompt."""
AUDIO_WRAPPER = "<Speech><SpeechHere></Speech>"
"""What SALMONN puts before the instruction: the audio tokens between two text tags."""


class OfficialModelSection(BaseModel):
    """The ``model:`` section of the official SALMONN YAML files (every field, upstream defaults)."""

    model_config = ConfigDict(extra="forbid")

    llama_path: str = ""
    whisper_path: str = ""
    beats_path: str = ""
    ckpt: str = ""
    freeze_whisper: bool = True
    freeze_beats: bool = True
    use_speech_Qformer: bool = True
    freeze_speech_QFormer: bool = False
    window_level_Qformer: bool = True
    num_speech_query_token: int = 1
    second_per_window: float = 0.333333
    second_stride: float = 0.333333
    speech_llama_proj_model: str = ""
    freeze_speech_llama_proj: bool = False
    lora: bool = True
    lora_rank: int = 8
    lora_alpha: float = 32
    lora_dropout: float = 0.1
    multi_prompt: bool = True
    prompt_template: str = OFFICIAL_PROMPT_TEMPLATE
    prompt_path: str = ""
    test_prompt_path: str = ""
    max_txt_len: int = 300
    end_sym: str = "</s>"
    low_resource: bool = False
    device_8bit: int = 0


class GenerationConfig(BaseModel):
    """Decoding options; the fields and defaults of the official ``generate:`` section, plus ``lora_scale``.

    ``lora_scale`` is the LoRA scaling factor used for this generation (upstream's fixed
    ``lora_alpha / lora_rank``, 4.0 for the official models). Lowering it (e.g. to 2.0) is
    SALMONN's activation-tuning knob; ``None`` keeps the model's trained value.
    """

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(200, ge=1)
    num_beams: int = Field(4, ge=1)
    do_sample: bool = False
    min_length: int = Field(1, ge=0)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(0.9, gt=0, le=1)
    repetition_penalty: float = Field(1.0, gt=0)
    length_penalty: float = 1.0
    lora_scale: float | None = Field(None, ge=0)

    def updated(self, **overrides: Any) -> "GenerationConfig":
        """Return a validated copy with the non-None ``overrides`` applied."""
        values = self.model_dump()
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return GenerationConfig(**values)
        except ValidationError as err:
            raise ConfigError(f"Invalid generation option: {format_validation_error(err, first_only=True)}") from None


class OfficialConfig(BaseModel):
    """A whole official YAML file: ``model`` and ``generate`` (decode) plus ``datasets``/``run`` (training)."""

    model_config = ConfigDict(extra="forbid")

    model: OfficialModelSection
    generate: GenerationConfig = Field(default_factory=GenerationConfig)
    datasets: dict[str, Any] | None = None
    run: dict[str, Any] | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "OfficialConfig":
        """Load an official SALMONN YAML file, with a clear error for a missing or malformed one."""
        raw = read_data_file(path, "yaml", "give the path of a SALMONN decode_config.yaml")
        if not isinstance(raw, dict) or "model" not in raw:
            raise ConfigError(f"{str(path)!r} has no 'model:' section; is it a SALMONN decode config?")
        try:
            return cls(**raw)
        except ValidationError as err:
            raise ConfigError(f"{str(path)!r}: {format_validation_error(err, first_only=True)}") from None


class QFormerConfig(BaseModel):
    """Size of the window-level Q-Former (BERT-base width, 2 layers for the official models)."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = 768
    num_hidden_layers: int = 2
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    num_query_tokens: int = 1
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout in training (BERT's, as upstream); 0 makes "
                           "a training step deterministic, e.g. to compare distributed runs.")


class LoraSettings(BaseModel):
    """LoRA on the LLM (the official models: r=8, alpha=32, dropout 0.1 on q_proj and v_proj)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    rank: int = Field(8, ge=1)
    alpha: float = 32
    dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])

    @property
    def scaling(self) -> float:
        """The trained LoRA scaling factor, alpha / rank."""
        return self.alpha / self.rank


class SALMONNConfig(BaseModel):
    """Everything needed to build a SALMONN model; stored as ``salmonn_config.json``.

    ``whisper``, ``beats`` and ``llm`` reference the frozen base models by hub id or local path
    (``beats`` is a path to the official ``.pt`` file, or None for the Whisper-only variant).
    Relative paths are resolved against the directory the config was loaded from.
    """

    model_config = ConfigDict(extra="forbid")

    whisper: str
    llm: str
    beats: str | None = None
    qformer: QFormerConfig = Field(default_factory=QFormerConfig)
    second_per_window: float = Field(0.333333, gt=0)
    second_stride: float = Field(0.333333, gt=0)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    prompt_template: str = OFFICIAL_PROMPT_TEMPLATE
    follow_up_template: str | None = None
    """The template of the user turns after the first (None: ``prompt_template``). A chat
    template whose first turn carries the system prompt gives its later turns without it."""
    answer_end: str = "\n"
    """Written after a past answer, before the next user turn (ChatML: ``<|im_end|>`` and a newline)."""
    end_sym: str = "</s>"
    add_bos: bool = True
    tokenizer_mode: Literal["auto", "sentencepiece", "hf"] = "auto"
    chunk_seconds: float = Field(30.0, gt=0, le=30.0)
    min_audio_seconds: float = Field(1.0, ge=0)
    max_audio_seconds: float = Field(600.0, gt=0)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    speech_transcript: bool = False
    """Also decode each clip with Whisper's own decoder and give the LLM the transcript as text
    right after the clip's audio tokens (the DeSTA2 design; salmonn-mini uses it, the official
    models do not): see :mod:`salmonn_agent.model.hints`."""
    sound_tags: bool = False
    """Also tag each clip with YAMNet's AudioSet classes and give the LLM the top tags as text
    after its audio tokens (salmonn-mini's stand-in for SALMONN's BEATs): see
    :mod:`salmonn_agent.sound_tags` and :mod:`salmonn_agent.model.hints`."""

    @field_validator("prompt_template", "follow_up_template")
    @classmethod
    def _template_has_slot(cls, value: str | None) -> str | None:
        if value is not None and value.count("{}") != 1:
            raise ValueError("a prompt template must contain exactly one '{}' for the user turn")
        return value

    @classmethod
    def from_official(cls, official: OfficialConfig) -> "SALMONNConfig":
        """Translate an official decode config into ours (paths stay as given)."""
        m = official.model
        if not m.use_speech_Qformer or not m.window_level_Qformer:
            raise ConfigError(
                "Only the window-level Q-Former variant (use_speech_Qformer and "
                "window_level_Qformer true) is supported; the official checkpoints use it."
            )
        if not m.whisper_path or not m.llama_path:
            raise ConfigError("The config needs model.whisper_path and model.llama_path.")
        return cls(
            whisper=m.whisper_path,
            llm=m.llama_path,
            beats=m.beats_path or None,
            qformer=QFormerConfig(num_query_tokens=m.num_speech_query_token),
            second_per_window=m.second_per_window,
            second_stride=m.second_stride,
            lora=LoraSettings(
                enabled=m.lora, rank=m.lora_rank, alpha=m.lora_alpha, dropout=m.lora_dropout
            ),
            prompt_template=m.prompt_template,
            end_sym=m.end_sym,
            generation=official.generate,
        )


def looks_local(reference: str) -> bool:
    """Whether a model reference can only be a local path: a hub id is ``name`` or ``owner/name``,
    never ``./x``, ``/x``, ``~/x``, ``a/b/c``, a Windows path or a weights file."""
    return (reference.startswith((".", "/", "~")) or reference.count("/") > 1 or "\\" in reference
            or reference.endswith((".pt", ".pth", ".bin", ".safetensors")))


def read_data_file(path: str | Path, fmt: Literal["yaml", "json"], missing_hint: str) -> Any:
    """Parse a YAML or JSON file, with one clear :class:`ConfigError` for a missing or malformed one.

    ``missing_hint`` ends the message for a missing file (e.g. "fix datasets.prompt_path").
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"File not found: {str(path)!r}; {missing_hint}.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{str(path)!r} is not a text {fmt.upper()} file (it holds binary data); "
                          f"{missing_hint}.") from None
    try:
        return json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{str(path)!r} is not valid {fmt.upper()}: {err}") from None

"""The training YAML: ``model`` (directory to start from), ``output_dir``, ``datasets`` and ``run``.

``datasets`` and ``run`` mirror the sections of the official ``configs/config.yaml`` where they
apply (``run.optims`` keeps the official names: max_epoch, warmup_steps, warmup_start_lr,
init_lr, min_lr, weight_decay, beta2). Relative paths are resolved against the YAML's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from salmonn_agent.config import read_data_file
from salmonn_agent.errors import ConfigError, format_validation_error


class OptimSection(BaseModel):
    """``run.optims``: AdamW + linear warmup + cosine decay (the official values as defaults)."""

    model_config = ConfigDict(extra="forbid")

    max_epoch: int = Field(30, ge=1)
    warmup_steps: int = Field(3000, ge=0)
    warmup_start_lr: float = 1e-6
    init_lr: float = Field(3e-5, gt=0)
    min_lr: float = Field(1e-5, ge=0)
    weight_decay: float = Field(0.05, ge=0)
    beta2: float = Field(0.999, gt=0, lt=1)
    # Not upstream: LoRA's learning rate is 0 for this many first optimizer steps, so only the
    # Q-Former and projection learn. Without it, training from scratch on a small data set let
    # the LLM learn the text prior through LoRA while the audio tokens collapsed to a constant.
    lora_frozen_steps: int = Field(0, ge=0)


class DatasetsSection(BaseModel):
    """``datasets``: annotation files, prompt files and the optional encoder-feature cache."""

    model_config = ConfigDict(extra="forbid")

    train_ann_path: str | None = None
    valid_ann_path: str | None = None
    test_ann_path: str | None = None
    prompt_path: str | None = None
    test_prompt_path: str | None = None
    whisper_path: str | None = None  # accepted for official files; the model's own Whisper is used
    feature_cache_dir: str | None = None
    max_audio_seconds: float = Field(30.0, gt=0)  # upstream cuts at 30 s


class RunSection(BaseModel):
    """``run``: the loop (official names where they exist, plus a few of ours)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 42
    log_freq: int = Field(5, ge=1)
    epoch_based: bool = False
    iters_per_epoch: int | None = Field(None, ge=1)  # micro-batches per epoch; None: one pass
    accum_grad_iters: int = Field(1, ge=1)
    batch_size_train: int = Field(8, ge=1)
    batch_size_eval: int = Field(8, ge=1)
    num_workers: int = Field(0, ge=0)
    # False: take the annotations in file order, epoch after epoch (a mix laid out batch by batch,
    # e.g. so that long prompts share batches instead of padding every short one to their length).
    shuffle: bool = True
    amp: bool = True  # bf16 (fp16 where bf16 is missing) on GPU; always float32 on CPU
    max_grad_norm: float | None = Field(1.0, gt=0)
    max_txt_len: int = Field(300, ge=1)
    lora_scale: float | None = Field(None, ge=0)  # activation tuning: train at this LoRA scale
    # Upstream's model.freeze_speech_QFormer / freeze_speech_llama_proj: keep the window Q-Former
    # (with its queries and input layer norms) or the projection fixed, so a later stage that only
    # teaches the LLM (through LoRA) a new kind of answer cannot disturb what the audio tokens carry.
    freeze_qformer: bool = False
    freeze_projection: bool = False
    # Not upstream: "ctc" trains only the Q-Former and projection to align audio tokens with the
    # LLM's input embeddings of each annotation's text (see training/alignment.py); "lm" is SALMONN's.
    objective: Literal["lm", "ctc"] = "lm"
    save_every_steps: int | None = Field(None, ge=1)  # optimizer steps; None: every epoch
    keep_checkpoints: int = Field(2, ge=1)
    valid_every_epochs: int = Field(1, ge=1)
    decode_valid: bool = True  # greedy-decode ASR samples in validation for WER
    max_new_tokens: int = Field(200, ge=1)
    num_beams: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1)  # stop early after this many optimizer steps
    resume: str | None = "auto"  # "auto": latest checkpoint in output_dir; a path; null/"none"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True
    optims: OptimSection = Field(default_factory=OptimSection)
    # accepted from official files, not used (accelerate decides these):
    evaluate: bool = False
    use_distributed: bool | None = None
    world_size: int | None = None
    dist_url: str | None = None
    output_dir: str | None = None


class TrainConfig(BaseModel):
    """A whole training/evaluation YAML file."""

    model_config = ConfigDict(extra="forbid")

    model: str
    output_dir: str
    datasets: DatasetsSection = Field(default_factory=DatasetsSection)
    run: RunSection = Field(default_factory=RunSection)
    base_dir: str | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.run.optims.min_lr > self.run.optims.init_lr:
            raise ValueError("run.optims.min_lr must not exceed init_lr")
        return self

    def path(self, value: str | None) -> Path | None:
        """A path from the file, resolved against the YAML's folder when relative."""
        if value is None:
            return None
        p = Path(value).expanduser()
        if not p.is_absolute() and self.base_dir is not None:
            p = Path(self.base_dir) / p
        return p


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a training YAML; ``overrides`` maps dotted keys (``run.max_steps``) to values."""
    path = Path(path)
    raw = read_data_file(path, "yaml", "give the path of a training YAML file")
    if not isinstance(raw, dict):
        raise ConfigError(f"{str(path)!r} must be a mapping with model, output_dir, datasets and run.")
    if isinstance(raw.get("model"), dict):
        raise ConfigError(
            f"{str(path)!r}: 'model:' must be a salmonn-agent model directory (convert an official "
            "checkpoint with tools/convert_salmonn_checkpoint.py first), not an official model section."
        )
    if "output_dir" not in raw and isinstance(raw.get("run"), dict) and raw["run"].get("output_dir"):
        raw["output_dir"] = raw["run"]["output_dir"]
    for key, value in (overrides or {}).items():
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        return TrainConfig(**raw, base_dir=str(path.resolve().parent))
    except ValidationError as err:
        raise ConfigError(f"{str(path)!r}: {format_validation_error(err, first_only=True)}") from None

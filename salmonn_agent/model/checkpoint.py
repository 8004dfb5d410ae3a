"""Loading and saving SALMONN weights: the official ``.pth`` checkpoints and our own format.

The official checkpoints (``salmonn_v1.pth``, ``salmonn_7b_v0.pth``) hold only the trainable
parameters (plus buffers) under ``model``, with upstream's module names. Upstream loads them
with ``strict=False``, so a wrong path or name silently leaves the Q-Former untrained and the
model answers nothing useful. Here every trainable parameter must be found, or loading stops
with an error naming what is missing.

Our format is a directory with ``salmonn_config.json`` (architecture + references to the frozen
Whisper / BEATs / LLM by hub id or path) and ``model.safetensors`` (trainable parameters).

This module reads and writes the files and moves trainable parameters in and out of any
module; ``SALMONN.from_pretrained`` / ``from_official`` / ``save_pretrained`` build on it.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch
from pydantic import BaseModel
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from salmonn_agent.config import SALMONNConfig, looks_local
from salmonn_agent.errors import CheckpointError, ConfigError
from salmonn_agent.model.qformer import official_to_ours, ours_to_official

logger = logging.getLogger(__name__)

CONFIG_FILE = "salmonn_config.json"
WEIGHTS_FILE = "model.safetensors"

# Buffers upstream's state_dict carries that this implementation recomputes.
_RECOMPUTED_BUFFERS = (re.compile(r"\.rotary_emb\.inv_freq$"), re.compile(r"embeddings\.position_ids$"))
_PREFIXES = (  # official prefix → ours
    ("speech_Qformer.bert.", "window_qformer.qformer."),
    ("speech_query_tokens", "window_qformer.query_tokens"),
    ("speech_llama_proj.", "projection."),
    ("llama_model.", "llm."),
    ("ln_speech.", "ln_speech."),
    ("ln_audio.", "ln_audio."),
)
_LORA_WITHOUT_ADAPTER = re.compile(r"\.lora_(A|B)\.weight$")

TRAINED_PREFIXES = ("window_qformer.", "ln_speech.", "ln_audio.", "projection.")
"""The SALMONN parts that training changes (besides LoRA); everything else is a frozen base model."""


def trainable_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters SALMONN trains (Q-Former, queries, layer norms, projection, LoRA), detached.

    Chosen by name, not by ``requires_grad``: a stage that holds the Q-Former fixed
    (``run.freeze_qformer``) still saves it.
    """
    return {
        name: param.detach()
        for name, param in model.named_parameters()
        if name.startswith(TRAINED_PREFIXES) or "lora_" in name
    }


class LoadReport(BaseModel):
    """What a checkpoint load did: counts and the names that did not match."""

    source: str
    loaded: int
    unexpected: list[str]
    ignored_buffers: int


def official_name_to_ours(name: str) -> str | None:
    """Our parameter name for an official one; None for buffers we recompute."""
    if any(p.search(name) for p in _RECOMPUTED_BUFFERS):
        return None
    for official, ours in _PREFIXES:
        if name.startswith(official):
            rest = name[len(official):]
            if official == "speech_Qformer.bert.":
                rest = official_to_ours(rest)
            name = ours + rest
            break
    # peft < 0.3 wrote `lora_A.weight`; current peft names the adapter: `lora_A.default.weight`.
    return _LORA_WITHOUT_ADAPTER.sub(r".lora_\1.default.weight", name)


def our_name_to_official(name: str) -> str:
    """The official name of one of our trainable parameters (LoRA keys keep ``.default``)."""
    for official, ours in _PREFIXES:
        if name.startswith(ours):
            rest = name[len(ours):]
            if official == "speech_Qformer.bert.":
                rest = ours_to_official(rest)
            return official + rest
    return name


def read_official_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``model`` entry of an official checkpoint file (optimizer state is dropped)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {str(path)!r}. Check model.ckpt in the config.")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a bad pickle
        raise CheckpointError(
            f"Could not read {str(path)!r} as a SALMONN checkpoint ({type(err).__name__}: {err})."
        ) from None
    state = raw.get("model") if isinstance(raw, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{str(path)!r} has no 'model' entry; official SALMONN checkpoints are "
            "{'model': state_dict, 'optimizer': ..., ...}."
        )
    return state


def load_trainable(
    model: nn.Module, state: dict[str, torch.Tensor], source: str, *, allow_unexpected: bool = True
) -> LoadReport:
    """Load trainable parameters given under our names; refuse if any is missing or misshapen
    (and, with ``allow_unexpected=False``, if ``state`` holds names the model does not train)."""
    expected = trainable_parameters(model)
    missing = sorted(set(expected) - set(state))
    if missing:
        raise CheckpointError(
            f"{source} leaves {len(missing)} of {len(expected)} trainable parameters unloaded "
            f"(first: {', '.join(missing[:5])}). The checkpoint does not match this model: check "
            "that it belongs to the configured Whisper/BEATs/LLM (e.g. BEATs given or not, "
            "LLM size) and that the file is complete."
        )
    for name in expected:
        if tuple(state[name].shape) != tuple(expected[name].shape):
            raise CheckpointError(
                f"{source}: {name} has shape {tuple(state[name].shape)} but the model expects "
                f"{tuple(expected[name].shape)}; the checkpoint belongs to another model size."
            )
    if not allow_unexpected and set(state) - set(expected):
        extra = sorted(set(state) - set(expected))
        raise CheckpointError(
            f"{source} does not match this model: {len(extra)} unexpected parameters "
            f"(first: {', '.join(extra[:5])}); resume with the same model and config."
        )
    unexpected = sorted(set(state) - set(model.state_dict()))
    if unexpected:
        logger.warning(
            "%s: %d unexpected keys ignored (first: %s)", source, len(unexpected), ", ".join(unexpected[:5])
        )
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name in expected:
            params[name].copy_(state[name].to(params[name].device, params[name].dtype))
    return LoadReport(source=source, loaded=len(expected), unexpected=unexpected, ignored_buffers=0)


def load_official_state(model: nn.Module, path: str | Path) -> LoadReport:
    """Load an official ``.pth`` checkpoint into ``model``, mapping upstream names onto ours."""
    renamed: dict[str, torch.Tensor] = {}
    ignored = 0
    for name, tensor in read_official_state_dict(path).items():
        ours = official_name_to_ours(name)
        if ours is None:
            ignored += 1
        else:
            renamed[ours] = tensor
    report = load_trainable(model, renamed, repr(str(path)))
    return report.model_copy(update={"ignored_buffers": ignored})


def write_model_dir(config: SALMONNConfig, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Write the config JSON and the trainable weights ``state`` (safetensors) to directory ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_FILE).write_text(
        _relocatable(config, path).model_dump_json(indent=2) + "\n", encoding="utf-8"
    )
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    save_file(tensors, str(path / WEIGHTS_FILE), metadata={"format": "pt", "salmonn_agent": "1"})


def _relocatable(config: SALMONNConfig, directory: Path) -> SALMONNConfig:
    """Local references rewritten relative to ``directory`` (hub ids unchanged), so a model
    directory can move together with the base models beside it."""

    def relative(reference: str | None) -> str | None:
        if reference is None or not Path(reference).is_absolute():
            return reference
        return os.path.relpath(reference, directory.resolve())

    return config.model_copy(
        update={"whisper": relative(config.whisper), "llm": relative(config.llm), "beats": relative(config.beats)}
    )


def read_model_dir(path: str | Path) -> tuple[Path, SALMONNConfig]:
    """The local directory of a model written by :func:`write_model_dir` (downloaded first when
    ``path`` is a hub id) and its config."""
    directory = _local_model_dir(path)
    try:
        config = SALMONNConfig.model_validate_json((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{str(directory / CONFIG_FILE)!r} is not a valid SALMONN config: {err}") from None
    return directory, config


def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """The trainable weights of a model directory."""
    try:
        return load_file(str(directory / WEIGHTS_FILE))
    except SafetensorError as err:
        raise CheckpointError(
            f"{str(directory / WEIGHTS_FILE)!r} is not a complete safetensors file ({err}); it may be truncated "
            "or damaged: copy or save the model again."
        ) from None


def _local_model_dir(path: str | Path) -> Path:
    directory = Path(path)
    if directory.is_dir():
        if not (directory / CONFIG_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
            raise ConfigError(
                f"{str(directory)!r} is not a salmonn-agent model directory: it needs "
                f"{CONFIG_FILE} and {WEIGHTS_FILE} (written by save_pretrained or "
                "tools/convert_salmonn_checkpoint.py)."
            )
        return directory
    # A salmonn-agent model on the hub is always owner/name.
    if directory.exists() or str(path).count("/") != 1 or looks_local(str(path)):
        raise ConfigError(f"Model not found: {str(path)!r} is neither a model directory nor a hub id.")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(path), allow_patterns=[CONFIG_FILE, WEIGHTS_FILE]))
    except Exception as err:  # noqa: BLE001 - network/hub errors vary
        raise ConfigError(
            f"Model not found: there is no local directory {str(path)!r}, and downloading it as a hub id "
            f"failed ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no details'}). "
            "Check the path (a directory from save_pretrained) or the hub id and your connection."
        ) from None


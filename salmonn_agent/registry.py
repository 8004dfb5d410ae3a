"""Which model to load.

Resolution, for every entry point (CLI, :class:`~salmonn_agent.chat_model.ChatSALMONN`, the
server, the assistant): an explicit model name, else ``$SALMONN_AGENT_MODEL``, else
``salmonn-mini``, the embedded default model. A name is ``salmonn-mini``, a model directory from
``save_pretrained`` or a hub id holding one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from salmonn_agent.errors import ModelNotAvailableError

if TYPE_CHECKING:
    import torch

    from salmonn_agent.model.salmonn import SALMONN

MODEL_ENV = "SALMONN_AGENT_MODEL"
"""Environment variable naming the model to use when none is given."""
DEFAULT_MODEL = "salmonn-mini"
"""The name that selects the embedded default model."""


def resolve_model_name(explicit: str | None) -> str:
    """The model to load: ``explicit``, else ``$SALMONN_AGENT_MODEL``, else ``salmonn-mini``."""
    return explicit or os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def load_model(
    name: str | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str = "auto",
) -> SALMONN:
    """Load the model ``name`` resolves to (see :func:`resolve_model_name`): a directory from
    ``save_pretrained``, a hub id, or ``"salmonn-mini"``; ``None`` means ``$SALMONN_AGENT_MODEL``,
    else salmonn-mini."""
    resolved = resolve_model_name(name)
    if resolved == DEFAULT_MODEL:
        from salmonn_agent.mini.shipped import WEIGHTS_FILE, load_mini, mini_weights_available

        if not mini_weights_available():
            raise ModelNotAvailableError(
                "No model given, and this installation of salmonn-agent has no embedded default "
                f"model ({WEIGHTS_FILE.name} is missing). Pass --model DIR (a directory from "
                "save_pretrained or tools/convert_salmonn_checkpoint.py), --config "
                f"decode_config.yaml (official SALMONN), or set ${MODEL_ENV}."
            )
        return load_mini(device=device, dtype=dtype)
    from salmonn_agent.model.salmonn import SALMONN

    return SALMONN.from_pretrained(resolved, device=device, dtype=dtype)

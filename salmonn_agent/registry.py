"""Which model to load, and what the runtime should know about it.

Resolution, for every entry point (CLI, :class:`~salmonn_agent.chat_model.ChatSALMONN`, the
server, the assistant): an explicit model name, else ``$SALMONN_AGENT_MODEL``, else
``salmonn-mini``, the embedded default model. A name is ``salmonn-mini``, a model directory from
``save_pretrained`` or a hub id holding one.

Each model has a :class:`ModelProfile`: salmonn-mini its own (so has a model directory built
on its base LLM, see :func:`profile_for`), any other SALMONN model :data:`GENERIC_PROFILE`. A
chat model reports its profile as ``model_profile``; :func:`profile_of` reads it, and gives
:data:`OTHER_CHAT_MODEL_PROFILE` for any chat model that has none (one that does not hear and
calls tools through ``bind_tools``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from salmonn_agent.errors import ModelNotAvailableError

if TYPE_CHECKING:
    import torch

    from salmonn_agent.model.salmonn import SALMONN

MODEL_ENV = "SALMONN_AGENT_MODEL"
"""Environment variable naming the model to use when none is given."""
DEFAULT_MODEL = "salmonn-mini"
"""The name that selects the embedded default model."""


class ModelProfile(BaseModel):
    """What the runtime needs to know about a model (or any chat model used as a brain)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hears_audio: bool = Field(
        True, description="Takes audio content blocks directly (else it needs the hearing tools).",
    )
    memory_turns: int | None = Field(
        None, ge=0,
        description="Turns the voice assistant remembers by default (None: the assistant's own default).",
    )
    taught_tools: tuple[str, ...] = Field(
        (), description="The action tools the model learned voice-assistant requests with: the assistant "
        "offers it those it has, allowed or not, so that its prompt is the one it learned (the gate "
        "still refuses every call that is not allowed).",
    )


GENERIC_PROFILE = ModelProfile()
"""Any SALMONN model that has no profile of its own (a model directory or hub id)."""
OTHER_CHAT_MODEL_PROFILE = ModelProfile(hears_audio=False)
"""A chat model that reports no profile: it hears nothing itself."""
PROFILES: dict[str, ModelProfile] = {
    # salmonn-mini learned the assistant's requests as first turns only. With remembered turns
    # it repeated an earlier answer on every later request; without them it picked the right
    # tool for 7 of 10 spoken commands of tools/bench_agent.py (1 of them with the right arguments).
    # Offered only some of its five tools (--allow add_note set_timer list_timers), it picked a
    # wrong one that ran for 2 of 10 spoken commands of tools/bench_agent.py ("Read me my notes"
    # set a timer); offered all five, with the gate refusing the others, none.
    DEFAULT_MODEL: ModelProfile(
        memory_turns=0, taught_tools=("add_note", "read_notes", "set_timer", "list_timers", "cancel_timer"),
    ),
}
"""The profiles of the models known by name."""


def resolve_model_name(explicit: str | None) -> str:
    """The model to load: ``explicit``, else ``$SALMONN_AGENT_MODEL``, else ``salmonn-mini``."""
    return explicit or os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def profile_for(name: str) -> ModelProfile:
    """The profile of the model ``name`` (a resolved name, as :func:`resolve_model_name` gives).

    A model directory built on salmonn-mini's base LLM (salmonn-mini trained further, or one of
    its training checkpoints) has salmonn-mini's profile: what the profile records was learned
    by the weights it starts from."""
    if name in PROFILES:
        return PROFILES[name]
    return PROFILES[DEFAULT_MODEL] if built_on_mini_parts(name) else GENERIC_PROFILE


def built_on_mini_parts(name: str) -> bool:
    """Whether ``name`` is a model directory whose ``salmonn_config.json`` takes its LLM from
    salmonn-mini's prepared base parts (see :mod:`salmonn_agent.mini.parts`)."""
    from salmonn_agent.mini.parts import mini_parts_dir

    config = Path(name) / "salmonn_config.json"
    try:
        llm = json.loads(config.read_text()).get("llm")
    except (OSError, ValueError, AttributeError):
        return False
    if not isinstance(llm, str) or not llm:
        return False
    path = Path(llm) if Path(llm).is_absolute() else config.parent / llm
    return path.resolve().is_relative_to(mini_parts_dir().parent.resolve())


def mini_chat_llm(model: Any) -> Path | None:
    """The directory of salmonn-mini's base chat LLM (SmolLM2-135M-Instruct, as prepared) when
    ``model`` (a loaded SALMONN) takes its LLM from there, else None. The voice assistant asks it
    whether a request sounds finished (:class:`~salmonn_agent.agent.turn_end.TurnEndModel`)."""
    from salmonn_agent.mini.parts import mini_parts_dir

    llm = getattr(getattr(model, "config", None), "llm", None)
    if not isinstance(llm, str) or not llm or not Path(llm).is_dir():
        return None
    path = Path(llm).resolve()
    return path if path.is_relative_to(mini_parts_dir().parent.resolve()) else None


def profile_of(chat_model: Any) -> ModelProfile:
    """What ``chat_model`` can do: its ``model_profile``, else :data:`OTHER_CHAT_MODEL_PROFILE`."""
    profile = getattr(chat_model, "model_profile", None)
    return profile if isinstance(profile, ModelProfile) else OTHER_CHAT_MODEL_PROFILE


def load_model(
    name: str | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str = "auto",
    quantize: str | None = None,
) -> SALMONN:
    """Load the model ``name`` resolves to (see :func:`resolve_model_name`): a directory from
    ``save_pretrained``, a hub id, or ``"salmonn-mini"``; ``None`` means ``$SALMONN_AGENT_MODEL``,
    else salmonn-mini. ``quantize``: the LLM's weights in ``int8``/``int4`` (see
    :mod:`salmonn_agent.model.weight_quant`)."""
    from salmonn_agent.model.threads import one_thread

    with one_thread(device):  # see salmonn_agent/model/threads.py: generation threads run faster after
        return _load(resolve_model_name(name), device, dtype, quantize)


def _load(
    resolved: str, device: str | torch.device | None, dtype: torch.dtype | str, quantize: str | None
) -> SALMONN:
    if resolved == DEFAULT_MODEL:
        from salmonn_agent.mini.shipped import WEIGHTS_FILE, load_mini, mini_weights_available

        if not mini_weights_available():
            raise ModelNotAvailableError(
                "No model given, and this installation of salmonn-agent has no embedded default "
                f"model ({WEIGHTS_FILE.name} is missing). Pass --model DIR (a directory from "
                "save_pretrained or tools/convert_salmonn_checkpoint.py), --config "
                f"decode_config.yaml (official SALMONN), or set ${MODEL_ENV}."
            )
        return load_mini(device=device, dtype=dtype, quantize=quantize)
    from salmonn_agent.model.salmonn import SALMONN

    return SALMONN.from_pretrained(resolved, device=device, dtype=dtype, quantize=quantize)

"""LoRA on the LLM (peft): adding the adapters, finding their layers, and scaling them for a while.

A call's ``lora_scale`` (generation) and a run's ``run.lora_scale`` (activation tuning in
training) both go through :func:`scaled_lora`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from torch import nn

from salmonn_agent.config import SALMONNConfig


def add_lora(llm: nn.Module, config: SALMONNConfig) -> nn.Module:
    """``llm`` wrapped by peft with the config's LoRA adapters on its target modules."""
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        inference_mode=False,
        r=config.lora.rank,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=list(config.lora.target_modules),
    )
    return get_peft_model(llm, lora)


def is_lora_layer(module: nn.Module) -> bool:
    """Whether ``module`` is one of peft's LoRA layers."""
    from peft.tuners.lora import LoraLayer

    return isinstance(module, LoraLayer)


def bare_llm(llm: nn.Module) -> nn.Module:
    """The transformers causal LM inside a peft wrapper (its LoRA layers stay injected), or ``llm``."""
    return llm.get_base_model() if hasattr(llm, "get_base_model") else llm


@contextlib.contextmanager
def scaled_lora(layers: Sequence[nn.Module], scale: float | None) -> Iterator[None]:
    """Every adapter of ``layers`` at ``scale`` inside the block (None: unchanged); the
    scales are restored afterwards."""
    if scale is None:
        yield
        return
    saved = [dict(layer.scaling) for layer in layers]
    try:
        for layer in layers:
            for adapter in layer.scaling:
                layer.scaling[adapter] = scale
        yield
    finally:
        for layer, values in zip(layers, saved):
            layer.scaling.update(values)

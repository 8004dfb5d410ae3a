"""Weight-only quantization of the LLM with bitsandbytes (``--quantize int8|int4``): big
checkpoints on GPUs with less memory.

The LLM's linear layers keep 8-bit (LLM.int8(), one scale per output row) or 4-bit (NF4,
one 8-bit scale per block of ``INT4_BLOCK`` weights, the scales themselves quantized in blocks
of ``INT4_SCALE_BLOCK``) weights and compute in the model's dtype.
LoRA's own matrices, the LM head, the embeddings, the encoders and the Q-Former are not
quantized, so peft's LoRA layers stay separate adapters on the quantized base layers and a
call's ``lora_scale`` still applies. Each layer is quantized as its weight moves to the
target device, so a GPU never holds the LLM's unquantized weights.

This is the memory option and runs on CUDA (its purpose) and on the CPU; the CPU's
``--dtype int8`` / ``float16-weights`` (:mod:`.precision`) are decoding-speed options there.
:func:`quantized_linear_bytes` gives the bytes a quantized layer takes, for memory estimates.
"""

from __future__ import annotations

import logging
import math
from types import ModuleType

import torch
from torch import nn

from salmonn_agent.errors import ConfigError

INT8, INT4 = "int8", "int4"
QUANTIZE_MODES = (INT8, INT4)
"""The values ``--quantize`` takes."""
INT4_BLOCK = 64
"""Weights per NF4 block (bitsandbytes' default); each block has one 8-bit scale."""
INT4_SCALE_BLOCK = 256
"""Block scales per float32 second-level scale (bitsandbytes' nested quantization)."""
INT8_THRESHOLD = 6.0
"""LLM.int8()'s outlier threshold: input columns with larger values are multiplied in the compute dtype."""
INSTALL_HINT = "pip install 'salmonn-agent[quantize]' (bitsandbytes)"


def quiet_kernel_notice() -> None:
    """Keep bitsandbytes' notice that an optional CPU kernel (fetched from a model hub) is not
    installed off the terminal; it is imported whenever bitsandbytes is installed (peft does)."""
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def import_bitsandbytes() -> ModuleType:
    """bitsandbytes, imported quietly (see :func:`quiet_kernel_notice`)."""
    quiet_kernel_notice()
    import bitsandbytes

    return bitsandbytes


def check_quantize(mode: str | None, device: torch.device) -> None:
    """Raise a one-line :class:`ConfigError` unless ``mode`` is None or a weight
    quantization that runs on ``device`` with bitsandbytes installed."""
    if mode is None:
        return
    if mode not in QUANTIZE_MODES:
        raise ConfigError(f"Unknown quantize {mode!r}: use int8 or int4 (or leave it out for unquantized weights).")
    if device.type not in ("cuda", "cpu"):
        raise ConfigError(
            f"quantize {mode} runs on cuda or cpu, not {device}: use --dtype float16 on {device.type}, "
            "or --device cuda."
        )
    try:
        import_bitsandbytes()
    except ImportError:
        raise ConfigError(f"quantize {mode} needs bitsandbytes: {INSTALL_HINT}.") from None


def quantize_linears(
    lm: nn.Module, mode: str, device: torch.device, dtype: torch.dtype, skip: tuple[str, ...] = ("lora_",)
) -> int:
    """Replace ``lm``'s ``nn.Linear`` layers (except names containing ``skip`` and the output
    layer) with bitsandbytes layers of ``mode`` weights on ``device`` computing in ``dtype``;
    returns how many were replaced. A layer wrapped by peft has its base layer replaced."""
    bnb = import_bitsandbytes()
    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    targets = [(name, child) for name, child in lm.named_modules()
               if type(child) is nn.Linear and child is not head and not any(s in name for s in skip)]
    for name, linear in targets:
        weight = linear.weight.detach().to(dtype)
        if mode == INT8:
            layer = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=linear.bias is not None,
                                        has_fp16_weights=False, threshold=INT8_THRESHOLD)
            layer.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
        else:
            layer = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=linear.bias is not None,
                                      compute_dtype=dtype, quant_type="nf4")
            layer.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4", blocksize=INT4_BLOCK,
                                                compress_statistics=True)
        if linear.bias is not None:
            layer.bias = nn.Parameter(linear.bias.detach().to(dtype), requires_grad=False)
        layer = layer.to(device)  # bitsandbytes quantizes the weight as it moves
        parent_name, _, attribute = name.rpartition(".")
        setattr(lm.get_submodule(parent_name) if parent_name else lm, attribute, layer)
    return len(targets)


def quantized_linear_bytes(in_features: int, out_features: int, mode: str) -> int:
    """Bytes of one quantized linear layer's weight and its scales (bias excluded): int8 has
    one byte a weight and a float32 scale per output row; int4 half a byte a weight, a byte
    per block of ``INT4_BLOCK`` weights, a float32 per ``INT4_SCALE_BLOCK`` blocks and a float32 offset."""
    weights = in_features * out_features
    if mode == INT8:
        return weights + 4 * out_features
    if mode == INT4:
        blocks = math.ceil(weights / INT4_BLOCK)
        return math.ceil(weights / 2) + blocks + 4 * math.ceil(blocks / INT4_SCALE_BLOCK) + 4
    raise ConfigError(f"Unknown quantize {mode!r}: use int8 or int4.")


def stored_bytes(module: nn.Module) -> int:
    """Bytes of ``module``'s parameters and buffers as stored, with the scales bitsandbytes
    keeps beside its quantized weights."""
    total = 0
    for tensor in [*module.parameters(), *module.buffers()]:
        state = getattr(tensor, "quant_state", None)
        if state is None:
            scales = [getattr(tensor, "SCB", None)]
        else:
            scales = [state.absmax, *([state.state2.absmax, state.offset] if state.nested else [])]
        total += sum(t.numel() * t.element_size() for t in [tensor, *scales] if t is not None)
    return total

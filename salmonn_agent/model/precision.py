"""Precision names and device placement: which dtype a model is loaded in, and how its LLM is
converted for CPU inference (int8 weights here, 16-bit weights in :mod:`.half_weights`).

``float32`` / ``bfloat16`` / ``float16`` are plain torch dtypes. Four more names are for CPU
decoding, which reads every LLM weight per token and is bound by memory bandwidth:
``int8`` (:func:`quantize_int8`), ``float16-weights`` and ``bfloat16-weights``
(:mod:`.half_weights`), and ``auto`` (on a CPU ``bfloat16-weights`` where it has native bfloat16
arithmetic, AVX512-BF16 or AMX, else ``float16-weights``; ``float32`` elsewhere). docs/model-card.md gives their speed
and accuracy on salmonn-mini. Quantized weights for GPUs with less memory are a separate choice,
``quantize`` (:mod:`.weight_quant`).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from salmonn_agent.errors import ConfigError
from salmonn_agent.model.weight_quant import check_quantize

INT8 = "int8"
"""The precision name for float32 weights with the LLM's linear layers quantized to 8 bits (CPU)."""
HALF_WEIGHTS = "float16-weights"
"""The precision name for float32 compute with the LLM's linear weights stored in float16."""
BF16_WEIGHTS = "bfloat16-weights"
"""The precision name for float32 compute with the LLM's linear products in bfloat16 weights."""
AUTO = "auto"
"""The precision name that picks per device: ``bfloat16-weights`` or ``float16-weights`` on a CPU
(see :func:`cpu_weights`), ``float32`` elsewhere."""
CPU_WEIGHT_FORMATS = (INT8, HALF_WEIGHTS, BF16_WEIGHTS)
"""The precision names that convert the LLM for CPU inference after placing."""


def native_bfloat16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX), where PyTorch's
    bfloat16 products are fast; elsewhere they are emulated."""
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def cpu_weights() -> str:
    """What ``auto`` means on this CPU: ``bfloat16-weights`` with native bfloat16 arithmetic,
    else ``float16-weights``."""
    return BF16_WEIGHTS if native_bfloat16() else HALF_WEIGHTS


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """``float32`` / ``bfloat16`` / ``float16`` (or a torch dtype) as a torch dtype; ``int8``,
    ``float16-weights``, ``bfloat16-weights`` and ``auto`` are float32 here (the LLM is converted
    after placing)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16, INT8: torch.float32,
             HALF_WEIGHTS: torch.float32, BF16_WEIGHTS: torch.float32, AUTO: torch.float32}
    if dtype not in names:
        raise ConfigError(
            f"Unknown dtype {dtype!r}: use auto, float32, float16-weights, bfloat16-weights, bfloat16, "
            "float16 or int8."
        )
    return names[dtype]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The given device, or the best available one (CUDA, then MPS, then CPU) for ``None``/``auto``."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"Unknown device {device!r} ({err}); use cpu, cuda, cuda:N or mps.") from None


def plan_placement(
    device: str | torch.device | None, dtype: torch.dtype | str, quantize: str | None = None
) -> tuple[torch.device, torch.dtype, str | None]:
    """Where and in which torch dtype to put a model, and the LLM conversion to apply after
    (``int8``, ``float16-weights``, ``bfloat16-weights`` or None); refuses the CPU-only
    conversions elsewhere.

    With ``quantize`` (``int8``/``int4`` weights, :mod:`.weight_quant`) ``auto`` is float16 on
    CUDA and float32 on a CPU, and the CPU conversions are refused: one weight format at a time.
    """
    target = resolve_device(device)
    check_quantize(quantize, target)
    if quantize is not None:
        if dtype in CPU_WEIGHT_FORMATS:
            raise ConfigError(
                f"quantize {quantize} and dtype {dtype} both set the LLM's weight format: give one of them "
                "(with quantize, use dtype auto, float32, bfloat16 or float16)."
            )
        if dtype == AUTO:
            dtype = torch.float16 if target.type == "cuda" else torch.float32
    if dtype == AUTO:
        dtype = cpu_weights() if target.type == "cpu" else torch.float32
    if dtype in CPU_WEIGHT_FORMATS and target.type != "cpu":
        raise ConfigError(f"dtype {dtype} is for CPU inference, not {target}: use bfloat16 or float16 there.")
    conversion = dtype if dtype in CPU_WEIGHT_FORMATS else None
    return target, resolve_dtype(dtype), conversion  # type: ignore[return-value]


def quantize_int8(lm: nn.Module) -> None:
    """Quantize ``lm``'s linear layers (LoRA's excepted) to int8 weights per output channel, with
    activations quantized on the fly: PyTorch's dynamic quantization (fbgemm kernels on x86)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {name: per_channel_dynamic_qconfig for name, module in lm.named_modules()
            if isinstance(module, nn.Linear) and "lora_" not in name}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao's deprecation notice
        quantize_dynamic(lm, spec, dtype=torch.qint8, inplace=True)

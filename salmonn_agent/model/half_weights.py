"""Half-precision storage for the LLM's linear weights, float32 everywhere else (CPU decoding).

Decoding one token multiplies a single row by every weight matrix of the LLM, so on a CPU it
is bound by memory bandwidth: with the weights stored in 16 bits there are half the bytes to
read. Two formats:

* ``float16``: PyTorch's float16 kernels are faster for a few rows, but on CPUs without native
  half-precision arithmetic a prompt's prefill (many rows, compute bound) is slow there, so with
  more than ``HALF_ROWS`` rows the weight is widened to float32 for that one product.
* ``bfloat16``: on CPUs with native bfloat16 arithmetic (AVX512-BF16, AMX) PyTorch's bfloat16
  products are fast at every row count (96 rows about 3x faster than float32); there the
  product always runs in bfloat16 (float32 accumulation), with no widening. Elsewhere bfloat16
  products are emulated and slow, so :mod:`.precision` picks this format only where the CPU has it.

Norms, attention, the residual stream and LoRA stay float32; a product's input is rounded to the
weight's format. docs/model-card.md ("Speed", "Precision") gives the measurements behind these
choices.

Written here because no library offers it for CPUs: torch's own float16 model is slow to
prefill, ``quantize_dynamic`` quantizes activations too (accuracy), and weight-only int8
(``_weight_int8pack_mm``) is much slower on x86 CPUs.

LoRA is folded into the 16-bit weights it adapts (:func:`merge_lora`): decoding then skips
the two small LoRA products per adapted layer. peft's own ``merge`` adds the update in place, so
each change of scale (a call's ``lora_scale``) would round the weight again and drift; here
the unmerged weight is kept (for the adapted layers only) and every merge starts from it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HALF_ROWS = 8
"""Products with at most this many rows use the float16 kernel; larger ones widen the weight
(the crossover on x86 CPUs with AVX2, see docs/model-card.md)."""
LARGE_WEIGHT = 16 * 2**20
"""A float16 weight of at least this many values (32 MB: the LM head's, larger than any CPU
cache) costs more to widen than its float16 product of up to :data:`LARGE_HALF_ROWS` rows:
widening SmolLM2-135M's head took 31.6 ms on 2 cores, its float16 product of 10 rows 5.5 ms
(``python tools/bench_matmul.py --json``)."""
LARGE_HALF_ROWS = 16
"""The float16 kernel's row limit for weights of :data:`LARGE_WEIGHT` values or more (the
guided decoding's checks of forced or speculated tokens feed the head up to about 11 rows)."""


class HalfWeightLinear(nn.Module):
    """A frozen ``nn.Linear`` whose weight is kept in float16 or bfloat16; inputs and outputs stay float32."""

    def __init__(self, linear: nn.Linear, dtype: torch.dtype = torch.float16) -> None:
        super().__init__()
        if dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"HalfWeightLinear stores float16 or bfloat16 weights, not {dtype}.")
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(linear.weight.detach().to(dtype), requires_grad=False)
        bias = linear.bias
        self.bias = None if bias is None else nn.Parameter(bias.detach().float(), requires_grad=False)
        self.unmerged: torch.Tensor | None = None
        """The weight before a LoRA update was merged into it (set by :func:`merge_lora`)."""
        self.merged_key: tuple[object, ...] | None = None
        """The LoRA state (scales, active adapters) the current weight was merged with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T + b`` in ``x``'s dtype (float16 kernel for few rows, float32 for many)."""
        weight = self.weight
        rows = x.numel() // max(x.shape[-1], 1)
        # As rows of plain strides: the LM head's input at a prefill is the prompt's last
        # position, a slice whose batch stride is the prompt's size, and with such a stride
        # PyTorch's float16 product fell back to a kernel 10-20x slower (180 ms instead of
        # 10 ms for SmolLM2's head on 2 cores). A view, so no copy.
        flat = x.reshape(rows, x.shape[-1])
        limit = LARGE_HALF_ROWS if weight.numel() >= LARGE_WEIGHT else HALF_ROWS
        if rows <= limit or weight.dtype in (x.dtype, torch.bfloat16):
            # The input is rounded to the weight's format too (float16: 3 significant digits, range
            # 6.5e4, which the activations entering salmonn-mini's linear layers stay well inside;
            # bfloat16: 2-3 digits, float32's range).
            out = F.linear(flat.to(weight.dtype), weight).to(x.dtype)
        else:
            out = F.linear(flat, weight.to(x.dtype))
        if self.bias is not None:
            out = out + self.bias.to(x.dtype)
        return out.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        weight = str(self.weight.dtype).removeprefix("torch.")
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, weight={weight}"


def halve_linear_weights(
    module: nn.Module, skip: tuple[str, ...] = ("lora_",), dtype: torch.dtype = torch.float16
) -> int:
    """Replace every ``nn.Linear`` inside ``module`` (except names containing ``skip``) with a
    :class:`HalfWeightLinear` of ``dtype`` weights; returns how many were replaced. Tied weights
    are untied: the embedding table stays float32, the output layer gets its own 16-bit copy."""
    targets = [
        (name, child)
        for name, child in module.named_modules()
        if type(child) is nn.Linear and not any(s in name for s in skip)
    ]
    for name, linear in targets:
        parent_name, _, attribute = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, attribute, HalfWeightLinear(linear, dtype))
    return len(targets)


def weight_format(module: nn.Module) -> str | None:
    """``"float16"`` or ``"bfloat16"``: the format of ``module``'s :class:`HalfWeightLinear`
    weights; None when it has none."""
    for child in module.modules():
        if isinstance(child, HalfWeightLinear):
            return str(child.weight.dtype).removeprefix("torch.")
    return None


def lora_state(layer: nn.Module) -> tuple[object, ...]:
    """What a peft LoRA layer's merged weight depends on: its scales, active and disabled adapters."""
    return (tuple(sorted(layer.scaling.items())), tuple(layer.active_adapters), bool(layer.disable_adapters))


def merge_lora(layer: nn.Module) -> None:
    """Fold a peft LoRA layer's update, at its current scale, into its :class:`HalfWeightLinear`
    base, so its forward is the base product alone (nothing to do if already merged so).

    The merge starts from the unmerged weight (kept on the first call), so repeated changes of
    scale do not accumulate rounding. A layer whose adapters are disabled gets the unmerged
    weight back. peft's ``merged_adapters`` tells its forward to skip the LoRA products.
    """
    base = layer.get_base_layer()
    if not isinstance(base, HalfWeightLinear):
        raise TypeError(f"merge_lora needs a HalfWeightLinear base layer, not {type(base).__name__}.")
    state = lora_state(layer)
    active = [] if layer.disable_adapters else [name for name in layer.active_adapters if name in layer.lora_A]
    if base.merged_key == state and list(layer.merged_adapters) == active:
        return
    if base.unmerged is None:
        base.unmerged = base.weight.detach().clone()
    with torch.no_grad():
        weight = base.unmerged.float()
        for name in active:
            weight = weight + layer.get_delta_weight(name).float()
        base.weight.copy_(weight.to(base.weight.dtype))
    layer.merged_adapters = active
    base.merged_key = state

"""The official optimizer and learning-rate schedule (LAVIS ``optims.py`` as SALMONN uses it).

* AdamW, betas (0.9, beta2), weight decay 0.05 on matrices; none on biases, norms (``ln``)
  and other 1-D parameters.
* Linear warmup from ``warmup_start_lr`` to ``init_lr`` over ``warmup_steps``, then cosine
  from ``init_lr`` to ``min_lr`` over the whole run (``max_epoch × steps per epoch``).

Upstream steps its schedule once per data iteration; here a step is one optimizer step (the
same thing with ``accum_grad_iters: 1``, the official setting).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from salmonn_agent.training.config import OptimSection


def build_optimizer(model: nn.Module, optims: OptimSection) -> torch.optim.AdamW:
    """AdamW over the trainable parameters with upstream's two weight-decay groups, each split
    into LoRA and non-LoRA parameters (``lora_frozen_steps`` holds the LoRA groups still)."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decays = not (param.ndim < 2 or "bias" in name or "ln" in name or "bn" in name)
        groups.setdefault((decays, "lora_" in name), []).append(param)
    param_groups = [
        {"params": params, "weight_decay": float(optims.weight_decay) if decays else 0.0, "lora": lora}
        for (decays, lora), params in sorted(groups.items(), key=lambda item: (not item[0][0], item[0][1]))
    ]
    return torch.optim.AdamW(
        param_groups, lr=float(optims.init_lr), weight_decay=float(optims.weight_decay), betas=(0.9, optims.beta2)
    )


def lr_at(step: int, total_steps: int, optims: OptimSection) -> float:
    """The learning rate for optimizer step ``step`` (0-based) of ``total_steps``."""
    start = optims.warmup_start_lr if optims.warmup_start_lr >= 0 else optims.init_lr
    if step < optims.warmup_steps:
        return min(optims.init_lr, start + (optims.init_lr - start) * step / max(optims.warmup_steps, 1))
    progress = step / max(total_steps, 1)
    return (optims.init_lr - optims.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress)) + optims.min_lr


def warmup_cosine_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, optims: OptimSection, start: int = 0
) -> LambdaLR:
    """A ``LambdaLR`` giving every group :func:`lr_at` of its step (0 on LoRA groups for the
    first ``lora_frozen_steps``), from optimizer step ``start`` (a resumed run's step: the
    schedule's only state)."""
    for group in optimizer.param_groups:
        # LambdaLR multiplies its lambda by the group's initial rate: with 1.0 the lambdas give
        # the rates themselves, exactly.
        group["initial_lr"] = 1.0

    def rate(step: int) -> float:
        return lr_at(step, total_steps, optims)

    def lora_rate(step: int) -> float:
        return 0.0 if step < optims.lora_frozen_steps else lr_at(step, total_steps, optims)

    lambdas = [lora_rate if group.get("lora") else rate for group in optimizer.param_groups]
    return LambdaLR(optimizer, lambdas, last_epoch=start - 1)

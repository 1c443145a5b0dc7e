"""AdamW with decay / no-decay parameter groups, and the warmup + cosine learning-rate schedule.

Weight decay applies to weight matrices only: biases, norm weights (LayerNorm, RMSNorm, BatchNorm) and
embedding-like 1-D parameters (learned queries, position tables of rank 1) get none, as in GPT-2/nanoGPT
and OpenVLA's trainer. Frozen parameters (`requires_grad=False`) are left out entirely, so the optimiser
state only covers what trains; a freeze schedule that unfreezes a component later rebuilds the optimiser.

    opt = build_optimizer(model, lr=3e-4, weight_decay=0.01)
    sched = warmup_cosine(opt, warmup_steps=100, total_steps=5_000, min_lr_ratio=0.1)
"""

from __future__ import annotations

import math

import torch
from torch import nn

_NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.Embedding)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split trainable parameters into [{decay}, {no decay}] groups (empty groups are dropped)."""
    no_decay_ids: set[int] = set()
    for module in model.modules():
        is_norm = isinstance(module, _NORM_TYPES) or "norm" in type(module).__name__.lower()
        for name, p in module.named_parameters(recurse=False):
            if is_norm or p.ndim < 2 or name.endswith("bias"):
                no_decay_ids.add(id(p))
    decay, no_decay, seen = [], [], set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:  # tied weights appear once
            continue
        seen.add(id(p))
        (no_decay if id(p) in no_decay_ids else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": float(weight_decay)},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    groups = param_groups(model, weight_decay)
    if not groups:
        raise ValueError("build_optimizer: the model has no trainable parameters (everything is frozen)")
    params = [p for g in groups for p in g["params"]]
    # the fused kernel (one pass over all parameters) takes a third of the time of the per-tensor loop on
    # a small model (docs/training.md); it needs plain float tensors on CPU or CUDA (not FSDP's DTensors)
    fused = all(
        type(p) is nn.Parameter and p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params
    )
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused or None)


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.1) -> float:
    """LR multiplier at `step`: linear warmup from 1/warmup to 1, then cosine down to `min_lr_ratio`."""
    if total_steps <= 0:
        raise ValueError(f"warmup_cosine: total_steps must be > 0, got {total_steps}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"warmup_cosine: min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    min_lr_ratio: float = 0.1,
    start_step: int = 0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR with `warmup_cosine_factor`; `start_step` positions it (resume, freeze-phase rebuilds)."""
    warmup_cosine_factor(0, warmup_steps, total_steps, min_lr_ratio)  # validate arguments early
    for g in optimizer.param_groups:
        g.setdefault("initial_lr", g["lr"])
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: warmup_cosine_factor(s, warmup_steps, total_steps, min_lr_ratio),
        last_epoch=start_step - 1,
    )

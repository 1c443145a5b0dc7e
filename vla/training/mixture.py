"""VQA co-training inside `vla train` (`+data@cotrain=vqa_cotrain`, docs/vqa.md), on the one mixture
implementation, `vla.data.mixture` (which also holds the robot-store mixtures of `vla train mixture=`).

`cotrain_fit` turns the robot windows and the VLA into `Trainer.fit` arguments: a `MixtureDataset` (robot
first, then the VQA sources), the step-aware `MixtureBatchSampler` following the config's weight schedule
(stratified: every batch holds each source's exact share), a collator that sends robot windows through the
VLA's processor and VQA samples through the same text tokenizer and image transform, and `CoTrainLoss`
(per-source loss weights; `loss_<source>` and `share_<source>` in the logs). The checkpoint is a plain VLA.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from vla.data.mixture import MixtureBatchSampler
from vla.data.vqa.cotrain import CoTrainLoss, build_cotrain, cotrain_collator
from vla.models.checkpoint import CheckpointContents


def _strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state_dict.items()}


def cotrain_fit(
    cfg: Any,
    vla: nn.Module,
    robot: Dataset,
    trainer_cfg: Any,
    checkpoint_contents: Callable[[dict[str, torch.Tensor]], CheckpointContents],
    load_model: Callable[[nn.Module, Path], None],
    collate_fn: Callable[[list[Any]], Any] | None = None,
    sample_weights: torch.Tensor | None = None,
) -> tuple[nn.Module, Dataset, dict[str, Any]]:
    """(model, train set, Trainer.fit keyword arguments) for co-training `vla` on robot windows + VQA.

    cfg: vla.data.vqa.cotrain.CoTrainConfig. checkpoint_contents/load_model are the plain VLA's functions
    (state dict keys of the VLA); the wrapper's "model." prefix is removed here, so checkpoints stay VLA
    ones.
    collate_fn: the robot windows' collate function (default: the VLA processor's)."""
    if sample_weights is not None:
        raise ValueError(
            "vla train: `mixture=` (several robot stores) cannot be combined with VQA co-training yet; "
            "train on one store with cotrain, or drop cotrain"
        )
    mix, schedule = build_cotrain(cfg, robot)
    proc = vla.processor
    state_dim = int(vla.vlm.cfg.state.dim) if vla.vlm.state_encoder is not None else 0
    # one text tokenizer (with the action tokens) and one image transform for robot and VQA samples
    robot_collate = collate_fn or proc.collate
    collate = cotrain_collator(cfg, robot_collate, proc.text_tokenizer, proc.transform, state_dim)
    model = CoTrainLoss(vla, cfg.robot_task)
    tc = trainer_cfg

    def batch_sampler(rank: int, world_size: int) -> MixtureBatchSampler:
        return MixtureBatchSampler(
            mix, tc.batch_size, schedule, tc.seed, cfg.stratified, rank, world_size, tc.grad_accum
        )

    sizes = ", ".join(f"{n} {len(s.dataset)}" for n, s in zip(mix.names, mix.sources, strict=True))
    w0 = ", ".join(f"{k} {v:.2f}" for k, v in schedule.weights_at(0).items())
    wn = ", ".join(f"{k} {v:.2f}" for k, v in schedule.weights_at(tc.steps - 1).items())
    print(f"[train] co-training: {sizes} samples; shares at step 0: {w0}; at the last step: {wn}")
    kwargs = {
        "collate_fn": collate,
        "checkpoint_contents": lambda sd: checkpoint_contents(_strip_prefix(sd, "model.")),
        "load_model": lambda m, d: load_model(vla, d),
        "batch_sampler": batch_sampler,
    }
    return model, mix, kwargs

"""Co-training from config: a robot dataset plus VQA sources as one weighted, scheduled mixture.

`CoTrainConfig` (hydra group `data`, preset `configs/data/vqa_cotrain.yaml`; mount it under any key with
`- data@cotrain: vqa_cotrain` in a command's defaults) names the VQA sources with their sampling and loss
weights, the robot source's weight (RT-2's default: about half of every batch is robot data), the task
identifier written into VQA prompts, and a weight schedule over optimiser steps.

    cfg = CoTrainConfig(vqa=[VQAMixSource(name="vqa", weight=1.0, source=VQASourceConfig(path=...))])
    mix, schedule = build_cotrain(cfg, robot_dataset)            # MixtureDataset, WeightSchedule
    collate = cotrain_collator(cfg, robot_collate, vlm.tokenizer, vlm.vision.transform, state_dim=15)
    sampler = lambda rank, world: MixtureBatchSampler(mix, 32, schedule, stratified=True, rank=rank,
                                                      world_size=world)
    Trainer(trainer_cfg).fit(CoTrainLoss(vla), mix, collate_fn=collate, batch_sampler=sampler)

`vla train ... +data@cotrain=vqa_cotrain` does exactly this (vla.training.mixture.cotrain_fit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from vla.core.config import register_config
from vla.data.vqa.config import VQAPromptConfig, VQASourceConfig
from vla.data.vqa.dataset import VQACollator, VQADataset
from vla.data.mixture import MixtureCollator, MixtureDataset, Source, WeightSchedule, weighted_loss
from vla.data.vqa.readers import read_vqa


@dataclass
class VQAMixSource:
    """One VQA source in the mixture: its task identifier, sampling weight, loss weight and files."""

    name: str = "vqa"
    weight: float = 1.0
    loss_weight: float = 1.0
    source: VQASourceConfig = field(default_factory=VQASourceConfig)


@dataclass
class ScheduleKnot:
    """Sampling weights (by source name, the robot's included) from optimiser step `step` on."""

    step: int = 0
    weights: dict[str, float] = field(default_factory=dict)


@register_config("vqa_cotrain", group="data")
@dataclass
class CoTrainConfig:
    robot_task: str = "robot"
    robot_weight: float = 1.0
    robot_loss_weight: float = 1.0
    vqa: list[VQAMixSource] = field(default_factory=lambda: [VQAMixSource()])
    schedule: list[ScheduleKnot] = field(default_factory=list)  # [] = the sources' constant weights
    interpolate: str = "linear"  # linear | step
    stratified: bool = True  # MixtureBatchSampler: exact shares per batch (robot and VQA in every batch)
    task_tag: bool = True  # write the source's name into VQA prompts ("[vqa] Question: ...")
    prompt_template: str = "{task}Question: {question} Answer:"


def cotrain_config_from_dict(data: dict[str, Any], where: str = "cotrain") -> CoTrainConfig:
    """A plain dict (a composed config section) -> CoTrainConfig, validated by the schema."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        merged = OmegaConf.merge(OmegaConf.structured(CoTrainConfig), data)
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ValueError(f"{where}: {str(e).splitlines()[0]}") from e
    assert isinstance(cfg, CoTrainConfig)
    if cfg.interpolate not in ("linear", "step"):
        raise ValueError(f"{where}.interpolate: expected linear or step, got {cfg.interpolate!r}")
    names = [cfg.robot_task] + [s.name for s in cfg.vqa]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: source names must be unique (robot_task and vqa[*].name), got {names}")
    return cfg


def build_cotrain(cfg: CoTrainConfig, robot: Dataset | None) -> tuple[MixtureDataset, WeightSchedule]:
    """The mixture (robot first, then each VQA source in order) and its weight schedule.

    robot=None builds a VQA-only mixture (the robot weight is then ignored)."""
    if not cfg.vqa and robot is None:
        raise ValueError("co-training: no sources (give a robot dataset and/or vqa sources)")
    sources = []
    if robot is not None:
        sources.append(Source(cfg.robot_task, robot, cfg.robot_weight, cfg.robot_loss_weight))
    for s in cfg.vqa:
        samples, errors = read_vqa(s.source)
        if not samples:
            raise ValueError(f"co-training: VQA source {s.name!r} ({s.source.path}) has no samples")
        if errors.total_skipped:
            print(f"[cotrain] {s.name}: {errors.summary()}")
        sources.append(Source(s.name, VQADataset(samples, task=s.name), s.weight, s.loss_weight))
    mix = MixtureDataset(sources)
    if cfg.schedule:
        knots = [(k.step, dict(k.weights)) for k in cfg.schedule]
        schedule = WeightSchedule(knots, cfg.interpolate)
        if set(schedule.names) != set(mix.names):
            raise ValueError(f"co-training: schedule names {schedule.names} != sources {sorted(mix.names)}")
    else:
        schedule = WeightSchedule.constant({s.name: s.weight for s in sources})
    return mix, schedule


def cotrain_collator(
    cfg: CoTrainConfig,
    robot_collate: Callable[[list[Any]], Any] | None,
    tokenizer: Any,
    transform: Any,
    state_dim: int = 0,
) -> MixtureCollator:
    """Per-task collation: the robot's own collate function, a VQACollator for every VQA source."""
    vqa = VQACollator(
        tokenizer,
        transform,
        VQAPromptConfig(template=cfg.prompt_template),
        use_task_tag=cfg.task_tag,
        state_dim=state_dim,
    )
    fns: dict[str, Callable[[list[Any]], Any]] = {s.name: vqa for s in cfg.vqa}
    if robot_collate is not None:
        fns[cfg.robot_task] = robot_collate
    return MixtureCollator(fns, default_task=cfg.robot_task if robot_collate is not None else None)


class CoTrainLoss(nn.Module):
    """The trainer's model contract over mixture batches: robot sub-batches go through the VLA's own
    forward, VQA sub-batches through its VLM (answer-only labels); the loss is `weighted_loss` of the
    per-task means, and each task's loss is logged as `loss_<task>`.

    model: a VLA (has `.vlm`) or a plain VLM (VQA-only mixtures). Saving: save `model`, not the wrapper."""

    def __init__(self, model: nn.Module, robot_task: str = "robot"):
        super().__init__()
        self.model = model
        self.robot_task = robot_task

    @property
    def vlm(self) -> nn.Module:
        """The model's VLM (not registered again, so state dict keys are only `model.*`)."""
        return getattr(self.model, "vlm", self.model)

    def components(self) -> dict[str, nn.Module]:
        return self.model.components()

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """A mixture batch -> loss, loss_<task> and share_<task> (fraction of the batch) per task, plus the
        robot sub-batch's own metrics (action_acc, ...). A plain robot batch (no "tasks" key, e.g. the
        validation episodes) goes straight to the VLA."""
        if "tasks" not in batch:
            return self.model(batch)
        losses: dict[str, torch.Tensor] = {}
        extra: dict[str, torch.Tensor] = {}
        for task, sub in batch["tasks"].items():
            if task == self.robot_task:
                robot_out = self.model(sub)
                losses[task] = robot_out["loss"]
                extra.update({k: v for k, v in robot_out.items() if k != "loss"})
            else:
                losses[task] = self.vlm(**sub).loss
        out = {"loss": weighted_loss(losses, batch["loss_weights"], batch["counts"])}
        out.update({f"loss_{t}": v.detach() for t, v in losses.items()})
        total = sum(int(n) for n in batch["counts"].values())
        out.update({f"share_{t}": torch.tensor(int(n) / total) for t, n in batch["counts"].items()})
        return {**extra, **out}

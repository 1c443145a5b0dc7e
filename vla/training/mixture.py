"""Weighted dataset mixtures for `vla train`: several episode stores in one train set, and VQA co-training.

A store mixture is a `ConcatDataset` of `WindowDataset`s plus per-sample weights for the trainer's weighted
sampler (`ResumableBatchSampler(weights=...)`, with replacement): a source of weight w and n samples gives
each of its samples w / n, so sources are drawn in proportion to their weights whatever their sizes.
Actions and states are normalised with the first (primary) store's statistics, which the checkpoint keeps;
every source must share its feature layout.

    train, weights, norm = build_mixture([MixtureSource("a.zarr", 2.0), MixtureSource("b.zarr", 1.0)], spec,
                                         {"action": "q99", "state": "meanstd"})

VQA co-training (`vla train ... +data@cotrain=vqa_cotrain`, docs/vqa.md): `cotrain_fit` turns the robot
windows, the VLA and its save/load functions into `Trainer.fit` arguments: a `MixtureDataset` (robot
first, then the VQA sources), the step-aware `MixtureBatchSampler` following the config's weight schedule
(stratified: every batch holds each source's exact share), a collator that sends robot windows through the
VLA's processor and VQA samples through the same text tokenizer and image transform, and `CoTrainLoss`
(per-source loss weights; `loss_<source>` and `share_<source>` in the logs). The checkpoint is a plain VLA.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import ConcatDataset, Dataset

from vla.core.normalizer import Normalizer
from vla.data.store import EpisodeStore
from vla.data.windows import WindowDataset, WindowSpec


@dataclass
class MixtureSource:
    path: str
    weight: float = 1.0
    episodes: Sequence[int] | None = None  # None: every episode


def mixture_weights(sizes: Sequence[int], weights: Sequence[float]) -> torch.Tensor:
    """Per-sample weights [sum(sizes)]: source i's samples get weights[i] / sizes[i] each (normalised)."""
    if len(sizes) != len(weights) or not sizes:
        raise ValueError(f"mixture: {len(sizes)} sources but {len(weights)} weights")
    parts = []
    for i, (n, w) in enumerate(zip(sizes, weights, strict=True)):
        if n <= 0:
            raise ValueError(f"mixture: source {i} has no samples")
        if not w > 0:
            raise ValueError(f"mixture: source {i} weight must be > 0, got {w}")
        parts.append(torch.full((int(n),), float(w) / int(n), dtype=torch.float64))
    out = torch.cat(parts)  # [N]
    return out / out.sum()


def build_mixture(
    sources: Sequence[MixtureSource], spec: WindowSpec, normalization: Mapping[str, str]
) -> tuple[ConcatDataset, torch.Tensor, Normalizer]:
    """Datasets of every source concatenated, their per-sample weights and the primary normaliser."""
    if not sources:
        raise ValueError("mixture: no sources")
    sets = [WindowDataset(s.path, spec, episodes=s.episodes) for s in sources]
    first = sets[0].features
    for s, ds in zip(sources[1:], sets[1:], strict=True):
        for k in ds.obs_keys + [spec.action_key]:
            if ds.features[k].shape != first[k].shape:
                raise ValueError(
                    f"mixture: {s.path} feature {k!r} has shape {ds.features[k].shape}, the primary store "
                    f"{sources[0].path} has {first[k].shape}"
                )
    weights = mixture_weights([len(d) for d in sets], [s.weight for s in sources])
    norm = EpisodeStore.open(sources[0].path).normalizer(dict(normalization))
    return ConcatDataset(sets), weights, norm


def _strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state_dict.items()}


def cotrain_fit(
    cfg: Any,
    vla: nn.Module,
    robot: Dataset,
    trainer_cfg: Any,
    save_model: Callable[[Path, dict[str, torch.Tensor]], None],
    load_model: Callable[[nn.Module, Path], None],
    collate_fn: Callable[[list[Any]], Any] | None = None,
    sample_weights: torch.Tensor | None = None,
) -> tuple[nn.Module, Dataset, dict[str, Any]]:
    """(model, train set, Trainer.fit keyword arguments) for co-training `vla` on robot windows + VQA.

    cfg: vla.data.vqa.cotrain.CoTrainConfig. save_model/load_model are the plain VLA's functions (state
    dict keys of the VLA); the wrapper's "model." prefix is removed here, so checkpoints stay VLA ones.
    collate_fn: the robot windows' collate function (default: the VLA processor's)."""
    from vla.data.vqa.cotrain import CoTrainLoss, build_cotrain, cotrain_collator
    from vla.data.vqa.mixture import MixtureBatchSampler

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
        "save_model": lambda d, sd: save_model(d, _strip_prefix(sd, "model.")),
        "load_model": lambda m, d: load_model(vla, d),
        "batch_sampler": batch_sampler,
    }
    return model, mix, kwargs

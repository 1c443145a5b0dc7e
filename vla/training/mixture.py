"""Weighted dataset mixtures for co-training: several episode stores (later VQA sets) in one train set.

A mixture is a `ConcatDataset` of `WindowDataset`s plus per-sample weights for the trainer's weighted
sampler (`ResumableBatchSampler(weights=...)`, with replacement): a source of weight w and n samples gives
each of its samples w / n, so sources are drawn in proportion to their weights whatever their sizes.
Actions and states are normalised with the first (primary) store's statistics, which the checkpoint keeps;
every source must share its feature layout.

    train, weights, norm = build_mixture([MixtureSource("a.zarr", 2.0), MixtureSource("b.zarr", 1.0)], spec,
                                         {"action": "q99", "state": "meanstd"})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import ConcatDataset

from vla.data.normalizer import Normalizer
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

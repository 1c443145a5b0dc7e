"""Dataset mixtures, the one implementation: several datasets (robot episode stores, VQA sets) behind one
index space, drawn by weight, with a task identifier and a loss weight per source, and a schedule that
changes the weights over training steps.

    mix = MixtureDataset([Source("robot", windows, weight=1.0), Source("vqa", vqa_set, weight=1.0)])
    schedule = WeightSchedule([(0, {"robot": 1, "vqa": 1}), (1000, {"robot": 3, "vqa": 1})])
    train, weights, norm = build_mixture([MixtureSource("a.zarr", 2.0), MixtureSource("b.zarr", 1.0)], spec,
                                         {"action": "q99", "state": "meanstd"})   # `vla train mixture=`

Two ways to sample it:

* With the generic trainer's weighted sampler (vla.training.trainer, `ResumableBatchSampler(weights=...)`,
  with replacement): `Trainer.fit(model, mix, sample_weights=mix.sample_weights(...))`. `per_sample_weights`
  gives source k's n_k samples w_k / n_k each (normalised), so sources are drawn in proportion to their
  weights whatever their sizes. This is how `vla train mixture=[...]` draws several episode stores
  (`build_mixture`: a MixtureDataset of `WindowDataset`s, normalised with the statistics of all of their
  frames together, `mixture_normalizer`, which the checkpoint keeps; every store must share its feature
  layout). A schedule runs as consecutive fits with `resume=true`, one per `schedule.segments(total_steps)`
  entry.
* `MixtureBatchSampler(mix, batch_size, schedule)`: step-aware, deterministic from (seed, micro-batch),
  resumable with `set_position(consumed_micro_batches)`; `stratified=True` gives every batch exactly its
  share of each source (largest remainder), so every batch holds both VQA and action samples. The trainer
  takes it directly: `Trainer.fit(..., batch_sampler=lambda rank, world: MixtureBatchSampler(mix, batch,
  schedule, rank=rank, world_size=world, grad_accum=accum))`; this is what VQA co-training in `vla train`
  uses.

Items come back tagged: a dict item gains "task" (the source name), "source" (its index) and
"loss_weight"; `MixtureCollator` groups a batch by task, applies each task's collate function and returns
{"tasks": {name: sub-batch}, "loss_weights": {name: w}, "counts": {name: n}}; `weighted_loss` combines the
per-task losses.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from vla.core.normalizer import Normalizer
from vla.data.store import EpisodeStore
from vla.data.windows import WindowDataset, WindowSpec


def per_sample_weights(sizes: Sequence[int], weights: Sequence[float]) -> torch.Tensor:
    """Per-sample weights [sum(sizes)] (float64, sum 1): source k's samples get weights[k] / sizes[k] each,
    normalised, so source k is drawn with probability weights[k] / sum(weights)."""
    if len(sizes) != len(weights) or not sizes:
        raise ValueError(f"mixture: {len(sizes)} sources but {len(weights)} weights")
    parts = []
    for i, (n, w) in enumerate(zip(sizes, weights, strict=True)):
        if n <= 0:
            raise ValueError(f"mixture: source {i} has no samples")
        if not w >= 0:
            raise ValueError(f"mixture: source {i} weight must be >= 0, got {w}")
        parts.append(torch.full((int(n),), float(w) / int(n), dtype=torch.float64))
    out = torch.cat(parts)  # [N]
    if not float(out.sum()) > 0:
        raise ValueError(f"mixture: weights {list(weights)} must have a positive sum")
    return out / out.sum()


def weigh_frames(
    dataset: WindowDataset | MixtureDataset,
    weights: torch.Tensor | None,
    early_frames: int = 0,
    early_weight: float = 1.0,
    motion_weight: float = 0.0,
) -> torch.Tensor:
    """Per-sample draw weights [N] (float64, sum 1) that favour the frames where a policy decides where to
    go, each source keeping its share of `weights` (None: one plain WindowDataset, uniform):

    - the first `early_frames` frames of every episode weigh `early_weight` times the others: the robot is
      at its start pose and must head for the named object (3 of a 25-step push episode: x 4 gives 33%);
    - every frame weighs 1 + `motion_weight` x the size of its x/y action (dx, dy) relative to the store's
      99th percentile, capped at 1: the approach and the carry to the goal, where the labels are
      centimetres, against the many millimetre frames of grasping, lowering and pushing.

        w = weigh_frames(windows, None, early_frames=3, early_weight=4.0)   # [N]
        w = weigh_frames(mixture, mixture_weights, motion_weight=3.0)       # [N]
    """
    if early_frames < 0 or not early_weight > 0 or not motion_weight >= 0:
        raise ValueError(
            f"early_frames must be >= 0, early_weight > 0, motion_weight >= 0; got {early_frames}, "
            f"{early_weight}, {motion_weight}"
        )
    parts = dataset.sources if isinstance(dataset, MixtureDataset) else None
    sets = [s.dataset for s in parts] if parts is not None else [dataset]
    n_all = len(dataset)
    base = torch.full((n_all,), 1.0 / n_all, dtype=torch.float64) if weights is None else weights
    if base.shape != (n_all,):
        raise ValueError(f"weigh_frames: weights {tuple(base.shape)} for {n_all} samples")
    out, lo = [], 0
    for ds in sets:
        if not isinstance(ds, WindowDataset):
            raise ValueError(f"weigh_frames: needs episode windows, got a {type(ds).__name__}")
        n = len(ds)
        factor = np.where(ds.frame_positions() < early_frames, float(early_weight), 1.0)  # [n]
        if motion_weight > 0:
            size = np.linalg.norm(ds.current_actions(("dx", "dy")), axis=1)  # [n] x/y translation
            scale = max(float(np.quantile(size, 0.99)), 1e-12)
            factor = factor * (1.0 + motion_weight * np.minimum(size / scale, 1.0))
        share = base[lo : lo + n].sum()  # this source's probability
        out.append(share * torch.as_tensor(factor / factor.sum(), dtype=torch.float64))
        lo += n
    w = torch.cat(out)
    return w / w.sum()


@dataclass
class Source:
    """One mixture member: a task identifier (also written into prompts), a dataset and its weights."""

    name: str
    dataset: Dataset
    weight: float = 1.0
    loss_weight: float = 1.0


class WeightSchedule:
    """Per-source sampling weights over optimiser steps: piecewise-linear (or piecewise-constant)
    between (step, {source: weight}) knots; constant before the first and after the last knot."""

    def __init__(self, knots: Sequence[tuple[int, Mapping[str, float]]], interpolate: str = "linear"):
        if not knots:
            raise ValueError("WeightSchedule: needs at least one (step, weights) knot")
        if interpolate not in ("linear", "step"):
            raise ValueError(f"WeightSchedule: interpolate must be 'linear' or 'step', got {interpolate!r}")
        steps = [int(s) for s, _ in knots]
        if steps != sorted(set(steps)) or steps[0] < 0:
            raise ValueError(f"WeightSchedule: knot steps must be distinct, >= 0 and increasing, got {steps}")
        names = set(knots[0][1])
        for s, w in knots:
            if set(w) != names:
                raise ValueError(
                    f"WeightSchedule: knot at step {s} names {sorted(w)}, expected {sorted(names)}"
                )
            bad = {k: v for k, v in w.items() if not float(v) >= 0}
            if bad or sum(float(v) for v in w.values()) <= 0:
                raise ValueError(f"WeightSchedule: weights at step {s} must be >= 0 with a positive sum")
        self.names = sorted(names)
        self.steps = steps
        self.table = np.array([[float(w[n]) for n in self.names] for _, w in knots])  # [K,S]
        self.interpolate = interpolate

    @classmethod
    def constant(cls, weights: Mapping[str, float]) -> WeightSchedule:
        return cls([(0, weights)])

    @classmethod
    def from_config(cls, knots: Sequence[Mapping[str, Any]], interpolate: str = "linear") -> WeightSchedule:
        """From config form: [{step: 0, weights: {robot: 1, vqa: 1}}, ...]."""
        return cls([(int(k["step"]), dict(k["weights"])) for k in knots], interpolate)

    def weights_at(self, step: int) -> dict[str, float]:
        """Normalised weights (sum 1) at `step`."""
        i = bisect.bisect_right(self.steps, int(step)) - 1
        if i < 0:
            row = self.table[0]
        elif i == len(self.steps) - 1 or self.interpolate == "step":
            row = self.table[i]
        else:
            t = (step - self.steps[i]) / (self.steps[i + 1] - self.steps[i])
            row = (1 - t) * self.table[i] + t * self.table[i + 1]
        row = row / row.sum()
        return {n: float(v) for n, v in zip(self.names, row, strict=True)}

    def segments(self, total_steps: int, every: int = 100) -> list[tuple[int, int, dict[str, float]]]:
        """[(start, end, weights)] covering [0, total_steps): one per knot interval ("step"), or chunks of
        `every` steps with the weights at each chunk's middle ("linear"), for piecewise Trainer fits."""
        if total_steps <= 0 or every <= 0:
            raise ValueError("WeightSchedule.segments: total_steps and every must be positive")
        if self.interpolate == "step":
            cuts = sorted({0, total_steps, *[s for s in self.steps if 0 < s < total_steps]})
        else:
            cuts = sorted(
                {*range(0, total_steps, every), total_steps, *[s for s in self.steps if s < total_steps]}
            )
        out = []
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            w = self.weights_at(a if self.interpolate == "step" else (a + b - 1) // 2)
            out.append((a, b, w))
        return out


class MixtureDataset(Dataset):
    """Several datasets behind one index space; items are tagged with their source's task and weights."""

    def __init__(self, sources: Sequence[Source]):
        if not sources:
            raise ValueError("MixtureDataset: no sources")
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"MixtureDataset: source names must be unique, got {names}")
        for s in sources:
            if len(s.dataset) == 0:
                raise ValueError(f"MixtureDataset: source {s.name!r} is empty")
            if not s.weight >= 0 or not s.loss_weight >= 0:
                raise ValueError(f"MixtureDataset: source {s.name!r} weights must be >= 0")
        self.sources = list(sources)
        self.sizes = [len(s.dataset) for s in self.sources]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)  # [S+1]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sources]

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, idx: int) -> tuple[int, int]:
        """Global index -> (source index, index within that source)."""
        if not 0 <= idx < len(self):
            raise IndexError(f"MixtureDataset: index {idx} out of range [0, {len(self)})")
        k = int(np.searchsorted(self.offsets, idx, side="right")) - 1
        return k, int(idx - self.offsets[k])

    def __getitem__(self, idx: int) -> dict[str, Any]:
        k, j = self.locate(int(idx))
        src = self.sources[k]
        item = src.dataset[j]
        tags = {"task": src.name, "source": k, "loss_weight": float(src.loss_weight)}
        if isinstance(item, Mapping):
            return {**item, **tags}
        return {"sample": item, **tags}

    def _raw_weights(self, weights: Mapping[str, float] | None) -> np.ndarray:
        """Per-source weights [S] (the sources' own when None), checked: >= 0 with a positive sum."""
        if weights is None:
            w = np.array([s.weight for s in self.sources], dtype=np.float64)
        else:
            missing = set(self.names) - set(weights)
            if missing:
                raise ValueError(f"MixtureDataset: no weight for sources {sorted(missing)}")
            w = np.array([float(weights[n]) for n in self.names], dtype=np.float64)
        if not np.all(w >= 0) or w.sum() <= 0:
            raise ValueError(f"MixtureDataset: weights must be >= 0 with a positive sum, got {w.tolist()}")
        return w

    def _weights(self, weights: Mapping[str, float] | None) -> np.ndarray:
        w = self._raw_weights(weights)
        return w / w.sum()

    def source_probs(self, weights: Mapping[str, float] | None = None) -> dict[str, float]:
        return dict(zip(self.names, self._weights(weights).tolist(), strict=True))

    def sample_weights(self, weights: Mapping[str, float] | None = None) -> torch.Tensor:
        """Per-sample weights [N] (sum 1) for `Trainer.fit(sample_weights=...)` (`per_sample_weights`):
        source k is drawn with probability p_k. Default: the sources' own weights."""
        return per_sample_weights(self.sizes, self._raw_weights(weights).tolist())


class MixtureBatchSampler(Sampler[list[int]]):
    """Step-aware weighted batches of global indices into a MixtureDataset (endless; resumable).

    Micro-batch `m` is a pure function of (seed, m): sources are drawn from the schedule's weights at
    optimiser step m // grad_accum (multinomial per slot, or exact shares with `stratified`), indices
    uniformly within a source. Rank r of world_size takes the r-th contiguous slice of each global batch."""

    def __init__(
        self,
        mixture: MixtureDataset,
        batch_size: int,
        schedule: WeightSchedule | None = None,
        seed: int = 0,
        stratified: bool = False,
        rank: int = 0,
        world_size: int = 1,
        grad_accum: int = 1,
    ):
        if grad_accum < 1:
            raise ValueError(f"MixtureBatchSampler: grad_accum must be >= 1, got {grad_accum}")
        if batch_size <= 0 or batch_size % world_size:
            raise ValueError(
                f"MixtureBatchSampler: batch {batch_size} must be a positive multiple of {world_size}"
            )
        self.mixture = mixture
        self.schedule = schedule or WeightSchedule.constant({s.name: s.weight for s in mixture.sources})
        if set(self.schedule.names) != set(mixture.names):
            raise ValueError(
                f"MixtureBatchSampler: schedule names {self.schedule.names} != sources {mixture.names}"
            )
        self.batch_size, self.seed, self.stratified = int(batch_size), int(seed), bool(stratified)
        self.rank, self.world_size, self.grad_accum = int(rank), int(world_size), int(grad_accum)
        self.start = 0

    def set_position(self, consumed_batches: int) -> None:
        """Resume: the next iterator starts at micro-batch `consumed_batches` (= step with grad_accum 1)."""
        if consumed_batches < 0:
            raise ValueError(f"MixtureBatchSampler: position must be >= 0, got {consumed_batches}")
        self.start = int(consumed_batches)

    def counts(self, step: int, rng: np.random.Generator) -> np.ndarray:
        """Samples per source [S] in the global batch of micro-batch `step`."""
        p = self.mixture._weights(self.schedule.weights_at(step // self.grad_accum))  # [S]
        if not self.stratified:
            return rng.multinomial(self.batch_size, p)
        exact = p * self.batch_size
        n = np.floor(exact).astype(np.int64)
        rest = self.batch_size - int(n.sum())
        order = np.argsort(-(exact - n), kind="stable")
        n[order[:rest]] += 1
        return n

    def batch(self, step: int) -> list[int]:
        """The global batch of micro-batch `step` (all ranks), as global mixture indices."""
        rng = np.random.default_rng([self.seed, int(step)])
        idx = []
        for k, c in enumerate(self.counts(step, rng)):
            idx += (self.mixture.offsets[k] + rng.integers(0, self.mixture.sizes[k], size=int(c))).tolist()
        return [int(i) for i in rng.permutation(idx)]

    def __iter__(self) -> Iterator[list[int]]:
        step, per = self.start, self.batch_size // self.world_size
        while True:
            yield self.batch(step)[self.rank * per : (self.rank + 1) * per]
            step += 1


@dataclass
class MixtureCollator:
    """Groups a mixed batch by task and collates each group with that task's function.

    Untagged items (not from a MixtureDataset, e.g. the trainer's validation episodes) belong to
    `default_task` with loss weight 1 (an error when it is None)."""

    collate_fns: Mapping[str, Callable[[list[Any]], Any]]
    default_task: str | None = None

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        groups: dict[str, list[Any]] = {}
        weights: dict[str, float] = {}
        for it in items:
            task = it.get("task", self.default_task) if "loss_weight" in it else self.default_task
            if task is None or task not in self.collate_fns:
                raise ValueError(f"MixtureCollator: no collate function for task {task!r}")
            payload = it["sample"] if set(it) == {"sample", "task", "source", "loss_weight"} else it
            groups.setdefault(task, []).append(payload)
            weights[task] = float(it.get("loss_weight", 1.0))
        return {
            "tasks": {t: self.collate_fns[t](g) for t, g in groups.items()},
            "loss_weights": weights,
            "counts": {t: len(g) for t, g in groups.items()},
        }


def weighted_loss(
    losses: Mapping[str, torch.Tensor], loss_weights: Mapping[str, float], counts: Mapping[str, int]
) -> torch.Tensor:
    """Per-task mean losses -> one scalar: sum_t w_t n_t L_t / sum_t w_t n_t (a sample-weighted mean)."""
    if not losses:
        raise ValueError("weighted_loss: no task losses")
    num = sum(float(loss_weights[t]) * int(counts[t]) * losses[t] for t in losses)
    den = sum(float(loss_weights[t]) * int(counts[t]) for t in losses)
    if den <= 0:
        raise ValueError(f"weighted_loss: loss weights x counts sum to {den}; need a positive value")
    return num / den


# ---- several episode stores (`vla train mixture=`) ------------------------------------------------------
@dataclass
class MixtureSource:
    """One episode store of a robot-data mixture."""

    path: str
    weight: float = 1.0
    episodes: Sequence[int] | None = None  # None: every episode


def build_mixture(
    sources: Sequence[MixtureSource], spec: WindowSpec, normalization: Mapping[str, str]
) -> tuple[MixtureDataset, torch.Tensor, Normalizer]:
    """Windows of every store in one MixtureDataset (sources named by path), their per-sample weights for
    the trainer's weighted sampler and one normaliser over all of their frames (`mixture_normalizer`)."""
    if not sources:
        raise ValueError("mixture: no sources")
    for i, s in enumerate(sources):
        if not s.weight > 0:
            raise ValueError(f"mixture: source {i} weight must be > 0, got {s.weight}")
    sets = [WindowDataset(s.path, spec, episodes=s.episodes) for s in sources]
    first = sets[0].features
    for s, ds in zip(sources[1:], sets[1:], strict=True):
        for k in ds.obs_keys + [spec.action_key]:
            if ds.features[k].shape != first[k].shape:
                raise ValueError(
                    f"mixture: {s.path} feature {k!r} has shape {ds.features[k].shape}, the primary store "
                    f"{sources[0].path} has {first[k].shape}"
                )
    paths = [str(s.path) for s in sources]
    names = [p if paths.count(p) == 1 else f"{p}[{i}]" for i, p in enumerate(paths)]
    mix = MixtureDataset(
        [Source(n, ds, weight=float(s.weight)) for n, s, ds in zip(names, sources, sets, strict=True)]
    )
    weights = per_sample_weights(mix.sizes, [s.weight for s in sources])
    return mix, weights, mixture_normalizer(paths, normalization)


def mixture_normalizer(paths: Sequence[str], normalization: Mapping[str, str]) -> Normalizer:
    """One Normalizer over the frames of every store in `paths` (each distinct store once): the statistics
    of their union, so that no store's actions fall outside the range the model is trained to output.
    One store gives its own (cached) statistics. With the first store's statistics alone, a four-task
    mixture whose first store is `pick` clipped every x step below pick's q01 (-23 mm) to it: place's
    and stack's set-off towards the goal (docs/training.md, session 19)."""
    unique = list(dict.fromkeys(str(p) for p in paths))
    stores = [EpisodeStore.open(p) for p in unique]
    if len(stores) == 1:
        return stores[0].normalizer(dict(normalization))
    stats = {}
    for key, mode in normalization.items():
        if mode == "identity":
            continue
        acc = stores[0].accumulate(key)
        for store in stores[1:]:
            acc.merge(store.accumulate(key))
        stats[key] = acc.result()
    return Normalizer(stats, dict(normalization))

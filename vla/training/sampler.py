"""A deterministic, resumable, rank-sharded batch sampler.

The order of samples is a pure function of (seed, epoch): epoch `e` draws a permutation from a
`torch.Generator` seeded with `seed + e`. Each *global* batch of `global_batch` indices is split into
`world_size` equal contiguous slices, rank `r` taking slice `r`, so N processes with per-rank batch b see
exactly the samples one process with batch N*b sees (the DDP-equivalence the tests check). The position
is a single number, the count of global batches already *consumed* (the trainer's counter, not the
sampler's, because DataLoader workers prefetch ahead): `set_position(n)` before iterating resumes with
batch n. Incomplete trailing batches are dropped (every step sees a full global batch).

    sampler = ResumableBatchSampler(len(ds), global_batch=32, seed=0, rank=0, world_size=1)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=2)
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableBatchSampler(Sampler[list[int]]):
    def __init__(
        self,
        num_samples: int,
        global_batch: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        weights: torch.Tensor | None = None,
    ):
        if num_samples <= 0:
            raise ValueError("ResumableBatchSampler: the dataset is empty")
        if global_batch <= 0 or global_batch % world_size:
            raise ValueError(
                f"ResumableBatchSampler: global batch {global_batch} must be a positive multiple of "
                f"world size {world_size}"
            )
        if global_batch > num_samples and weights is None:
            raise ValueError(
                f"ResumableBatchSampler: global batch {global_batch} exceeds the {num_samples} samples"
            )
        if weights is not None and (weights.ndim != 1 or weights.numel() != num_samples):
            raise ValueError(f"ResumableBatchSampler: weights must have shape [{num_samples}]")
        self.num_samples, self.global_batch = int(num_samples), int(global_batch)
        self.seed, self.rank, self.world_size, self.shuffle = int(seed), int(rank), int(world_size), shuffle
        self.weights = None if weights is None else weights.double().clone()
        self.start_batch = 0

    @property
    def per_rank_batch(self) -> int:
        return self.global_batch // self.world_size

    def batches_per_epoch(self) -> int:
        return self.num_samples // self.global_batch

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed + epoch)
        if self.weights is not None:  # weighted sampling with replacement (dataset mixtures)
            return torch.multinomial(self.weights, self.num_samples, replacement=True, generator=g)
        if not self.shuffle:
            return torch.arange(self.num_samples)
        return torch.randperm(self.num_samples, generator=g)

    def set_position(self, consumed_batches: int) -> None:
        """Resume: the next iterator starts at global batch number `consumed_batches`."""
        if consumed_batches < 0:
            raise ValueError(f"sampler position must be >= 0, got {consumed_batches}")
        self.start_batch = int(consumed_batches)

    def __iter__(self) -> Iterator[list[int]]:
        """Endless: walks epochs from the start position; the trainer decides when to stop."""
        per_epoch = self.batches_per_epoch()
        epoch, b = divmod(self.start_batch, per_epoch)
        lo = self.rank * self.per_rank_batch
        while True:
            order = self._epoch_order(epoch)  # [num_samples]
            for i in range(b, per_epoch):
                chunk = order[i * self.global_batch : (i + 1) * self.global_batch]  # [global_batch]
                yield chunk[lo : lo + self.per_rank_batch].tolist()
            epoch, b = epoch + 1, 0

    def __len__(self) -> int:
        return self.batches_per_epoch()

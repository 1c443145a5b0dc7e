"""Per-dimension statistics and the one normaliser of the project (data, tokenizers, processor, checkpoints).

`StatsAccumulator(D)` streams batches `x[..., D]` and keeps, per dimension, the exact count, mean and std
(Chan/Welford parallel merge, float64), exact min/max, and approximate q01/q99 from a deterministic
mergeable quantile sketch (Manku-Rajagopalan-Lindsay compactors; bounded memory, no randomness):

* while at most `capacity` rows have been seen the quantiles are exact and equal `np.quantile(x, q)`
  (linear interpolation);
* beyond that the sketch keeps fewer than `capacity * (2 + log2(n / capacity))` rows, and the returned
  value has a rank error of at most `e * n` with `e = (log2(n / capacity) + 2) / capacity` (each level-h
  compaction moves ranks by at most 2**h and there are at most n / (capacity 2**h) of them): the q01
  returned lies between the exact quantiles at 0.01 - e and 0.01 + e (e = 0.24% for n = 1e6 rows with the
  default capacity 4096; in practice the error is several times smaller, see the tests);
* the same sequence of updates and merges always gives the same result.

`Normalizer(stats, modes)` maps each key's last dim with one mode:

    "q99"      2 (x - q01) / (q99 - q01) - 1, clipped to [-1, 1]   (OpenVLA's BOUNDS_Q99)
    "minmax"   2 (x - min) / (max - min) - 1                       (exact inverse)
    "meanstd"  (x - mean) / std                                    (exact inverse)
    "identity" x

Constant dimensions (range or std below `eps`) map to 0 in q99/minmax and un-map to the constant value;
in meanstd they are only shifted by the mean (divisor 1), which keeps the inverse exact. numpy arrays and
torch tensors are both accepted (shape [..., D]); inputs are never mutated. JSON form via `save`/`load`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vla.core.io import atomic_write_json, read_json

STAT_NAMES: tuple[str, ...] = ("mean", "std", "min", "max", "q01", "q99", "count")
MODES: dict[str, tuple[str, ...]] = {
    "q99": ("q01", "q99"),
    "minmax": ("min", "max"),
    "meanstd": ("mean", "std"),
    "identity": (),
}
DEFAULT_CAPACITY = 4096
FORMAT_VERSION = 1


class StatsAccumulator:
    """Streaming per-dimension count/mean/std/min/max (exact) and q01/q99 (sketch, see module doc)."""

    def __init__(self, dim: int, capacity: int = DEFAULT_CAPACITY) -> None:
        if int(dim) < 1:
            raise ValueError(f"StatsAccumulator: dim must be >= 1, got {dim}")
        if int(capacity) < 8 or int(capacity) % 2:
            raise ValueError(f"StatsAccumulator: capacity must be an even number >= 8, got {capacity}")
        self.dim = int(dim)
        self.capacity = int(capacity)
        self.count = 0
        self._mean = np.zeros(self.dim, dtype=np.float64)
        self._m2 = np.zeros(self.dim, dtype=np.float64)
        self._min = np.full(self.dim, np.inf)
        self._max = np.full(self.dim, -np.inf)
        # levels[h]: rows of weight 2**h, shape [m_h, D]; parity[h]: which half the next compaction keeps.
        self._levels: list[np.ndarray] = [np.empty((0, self.dim))]
        self._parity: list[int] = [0]

    # --- exact moments -------------------------------------------------------------------------------
    def update(self, x: Any, where: str = "") -> StatsAccumulator:
        """Add rows of `x` (shape [..., D]; leading dims are flattened). Returns self."""
        arr = np.asarray(x, dtype=np.float64)
        loc = f" ({where})" if where else ""
        if arr.ndim == 0 or arr.shape[-1] != self.dim:
            raise ValueError(f"StatsAccumulator{loc}: expected shape [..., {self.dim}], got {arr.shape}")
        rows = arr.reshape(-1, self.dim)  # [N, D]
        if rows.shape[0] == 0:
            return self
        if not np.all(np.isfinite(rows)):
            bad = np.argwhere(~np.isfinite(rows))[0]
            raise ValueError(f"StatsAccumulator{loc}: non-finite value at row {bad[0]}, dim {bad[1]}")
        n = rows.shape[0]
        mean = rows.mean(axis=0)
        m2 = ((rows - mean) ** 2).sum(axis=0)
        self._combine(n, mean, m2, rows.min(axis=0), rows.max(axis=0))
        for start in range(0, n, self.capacity):  # bounded transient memory for huge batches
            self._levels[0] = np.concatenate([self._levels[0], rows[start : start + self.capacity]], axis=0)
            self._compact()
        return self

    def _combine(self, n: int, mean: np.ndarray, m2: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        total = self.count + n
        delta = mean - self._mean
        self._mean = self._mean + delta * (n / total)
        self._m2 = self._m2 + m2 + delta**2 * (self.count * n / total)
        self._min = np.minimum(self._min, lo)
        self._max = np.maximum(self._max, hi)
        self.count = total

    # --- quantile sketch -----------------------------------------------------------------------------
    def _compact(self) -> None:
        h = 0
        while h < len(self._levels):
            level = self._levels[h]
            if level.shape[0] >= self.capacity:
                m = level.shape[0] - level.shape[0] % 2
                chunk = np.sort(level[:m], axis=0)  # each dim sorted on its own
                promoted = chunk[self._parity[h] :: 2]  # [m/2, D], weight doubles
                self._parity[h] ^= 1
                self._levels[h] = level[m:]
                if h + 1 == len(self._levels):
                    self._levels.append(np.empty((0, self.dim)))
                    self._parity.append(0)
                self._levels[h + 1] = np.concatenate([self._levels[h + 1], promoted], axis=0)
            h += 1

    def quantile(self, q: float) -> np.ndarray:
        """Per-dimension q-quantile, shape [D] (exact while count <= capacity)."""
        if self.count == 0:
            raise ValueError("StatsAccumulator: no data, cannot compute quantiles")
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"StatsAccumulator: quantile must be in [0, 1], got {q}")
        if all(lv.shape[0] == 0 for lv in self._levels[1:]):
            return np.quantile(self._levels[0], q, axis=0)
        values = np.concatenate(self._levels, axis=0)  # [M, D]
        weights = np.concatenate([np.full(lv.shape[0], 2.0**h) for h, lv in enumerate(self._levels)])
        order = np.argsort(values, axis=0, kind="stable")  # [M, D]
        sorted_vals = np.take_along_axis(values, order, axis=0)
        cum = np.cumsum(weights[order], axis=0)  # [M, D] cumulative weight per dim
        target = q * (self.count - 1)
        out = np.empty(self.dim)
        for d in range(self.dim):
            i = int(np.searchsorted(cum[:, d], target, side="right"))
            out[d] = sorted_vals[min(i, sorted_vals.shape[0] - 1), d]
        return np.clip(out, self._min, self._max)

    def merge(self, other: StatsAccumulator) -> StatsAccumulator:
        """Fold `other` into self (other is not modified). Returns self."""
        if other.dim != self.dim or other.capacity != self.capacity:
            raise ValueError(
                f"StatsAccumulator.merge: dim/capacity mismatch ({self.dim}, {self.capacity}) vs "
                f"({other.dim}, {other.capacity})"
            )
        if other.count == 0:
            return self
        self._combine(other.count, other._mean, other._m2, other._min, other._max)
        for h, lv in enumerate(other._levels):
            if h == len(self._levels):
                self._levels.append(np.empty((0, self.dim)))
                self._parity.append(0)
            self._levels[h] = np.concatenate([self._levels[h], lv], axis=0)
        self._compact()
        return self

    def result(self) -> dict[str, np.ndarray]:
        """mean/std/min/max/q01/q99 as float64 [D]; count as int64 [1]."""
        if self.count == 0:
            raise ValueError("StatsAccumulator: no data, cannot compute statistics")
        return {
            "mean": self._mean.copy(),
            "std": np.sqrt(np.maximum(self._m2 / self.count, 0.0)),
            "min": self._min.copy(),
            "max": self._max.copy(),
            "q01": self.quantile(0.01),
            "q99": self.quantile(0.99),
            "count": np.array([self.count], dtype=np.int64),
        }

    def memory_rows(self) -> int:
        """Rows currently held by the sketch (bounded by capacity * number of levels)."""
        return sum(lv.shape[0] for lv in self._levels)


def compute_stats(x: Any, capacity: int = DEFAULT_CAPACITY) -> dict[str, np.ndarray]:
    """Statistics of one in-memory array [..., D] (convenience over StatsAccumulator)."""
    arr = np.asarray(x)
    if arr.ndim == 0:
        raise ValueError(f"compute_stats: expected shape [..., D], got {arr.shape}")
    return StatsAccumulator(arr.shape[-1], capacity).update(arr).result()


def _torch_params(
    x: Any, params: tuple[np.ndarray, np.ndarray, np.ndarray, bool]
) -> tuple[Any, Any, list[Any]]:
    """(output dtype, working dtype, [center, scale, const mask] as tensors on x's device).

    Work happens in float64 on the CPU (exact inverse) and in x's float dtype (float32 for integer
    input) on accelerators, some of which have no float64.
    """
    import torch

    dt = x.dtype if x.is_floating_point() else torch.float32
    work = torch.float64 if x.device.type == "cpu" else dt
    center, scale, const, _ = params
    c, sc = (torch.as_tensor(a, dtype=work, device=x.device) for a in (center, scale))
    return dt, work, [c, sc, torch.as_tensor(const, device=x.device)]


def _zero_masked(mask: Any, y: Any) -> Any:
    """y with the masked (constant) dims set to 0."""
    import torch

    return torch.where(mask, torch.zeros((), dtype=y.dtype, device=y.device), y)


def _is_torch(x: Any) -> bool:
    mod = type(x).__module__
    return mod.startswith("torch") and hasattr(x, "detach")


class Normalizer:
    """Maps features to normalised space and back, per key and per last-dim component."""

    def __init__(
        self,
        stats: Mapping[str, Mapping[str, Any]],
        modes: Mapping[str, str],
        eps: float = 1e-8,
    ) -> None:
        self.eps = float(eps)
        self.modes: dict[str, str] = {}
        self.stats: dict[str, dict[str, np.ndarray]] = {}
        self.dims: dict[str, int] = {}
        for key, mode in modes.items():
            if mode not in MODES:
                raise ValueError(
                    f"Normalizer: key {key!r}: unknown mode {mode!r}; expected one of {list(MODES)}"
                )
            self.modes[key] = mode
        for key, st in stats.items():
            self.stats[key] = {
                name: np.array(v, dtype=np.float64, copy=True).reshape(-1) for name, v in st.items()
            }
        for key, mode in self.modes.items():
            need = MODES[mode]
            if not need:
                continue
            if key not in self.stats:
                raise ValueError(f"Normalizer: key {key!r} has mode {mode!r} but no statistics")
            st = self.stats[key]
            dims = set()
            for name in need:
                if name not in st:
                    raise ValueError(f"Normalizer: key {key!r}: mode {mode!r} needs stat {name!r}")
                if not np.all(np.isfinite(st[name])):
                    raise ValueError(f"Normalizer: key {key!r}: stat {name!r} has non-finite values")
                dims.add(st[name].shape[0])
            if len(dims) != 1:
                raise ValueError(f"Normalizer: key {key!r}: stats {need} have different lengths {dims}")
            self.dims[key] = dims.pop()
        self._params = {key: self._affine(key) for key in self.modes}

    def _affine(self, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool] | None:
        """y = (x - shift) / scale, masked dims -> 0, optional clip; None for identity."""
        mode = self.modes[key]
        if mode == "identity":
            return None
        st = self.stats[key]
        if mode == "meanstd":
            std = st["std"]
            const = std < self.eps
            return st["mean"], np.where(const, 1.0, std), np.zeros_like(const), False
        lo, hi = (st["q01"], st["q99"]) if mode == "q99" else (st["min"], st["max"])
        rng = hi - lo
        const = rng < self.eps
        half = np.where(const, 1.0, rng / 2.0)
        return lo + rng / 2.0, half, const, mode == "q99"

    def __contains__(self, key: str) -> bool:
        return key in self.modes

    def mode(self, key: str) -> str:
        if key not in self.modes:
            raise ValueError(f"Normalizer: no mode for key {key!r}; known keys {sorted(self.modes)}")
        return self.modes[key]

    def _prepare(
        self, key: str, x: Any
    ) -> tuple[Any, tuple[np.ndarray, np.ndarray, np.ndarray, bool] | None]:
        self.mode(key)
        params = self._params[key]
        if params is not None:
            d = self.dims[key]
            if len(x.shape) == 0 or x.shape[-1] != d:
                raise ValueError(f"Normalizer: key {key!r}: expected shape [..., {d}], got {tuple(x.shape)}")
        return x, params

    def normalize(self, key: str, x: Any) -> Any:
        """Forward map of `x` [..., D] (numpy or torch); returns a new array of x's float dtype."""
        x, params = self._prepare(key, x if _is_torch(x) else np.asarray(x))
        if params is None:
            return x.clone() if _is_torch(x) else np.array(x, copy=True)
        center, scale, const, clip = params
        if _is_torch(x):
            dt, work, (c, sc, m) = _torch_params(x, params)
            y = (x.to(work) - c) / sc
            y = _zero_masked(m, y)
            return (y.clamp(-1.0, 1.0) if clip else y).to(dt)
        dt = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
        y = (x.astype(np.float64) - center) / scale
        y = np.where(const, 0.0, y)
        return (np.clip(y, -1.0, 1.0) if clip else y).astype(dt)

    def unnormalize(self, key: str, y: Any) -> Any:
        """Inverse map of `y` [..., D]; constant dims return their constant value."""
        y, params = self._prepare(key, y if _is_torch(y) else np.asarray(y))
        if params is None:
            return y.clone() if _is_torch(y) else np.array(y, copy=True)
        center, scale, const, _ = params
        if _is_torch(y):
            dt, work, (c, sc, m) = _torch_params(y, params)
            return (_zero_masked(m, y.to(work)) * sc + c).to(dt)
        dt = y.dtype if np.issubdtype(y.dtype, np.floating) else np.float32
        yy = np.where(const, 0.0, y.astype(np.float64))
        return (yy * scale + center).astype(dt)

    # --- persistence ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "vla.normalizer",
            "version": FORMAT_VERSION,
            "eps": self.eps,
            "modes": dict(self.modes),
            "stats": {k: {n: v.tolist() for n, v in st.items()} for k, st in self.stats.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "normalizer dict") -> Normalizer:
        if not isinstance(d, Mapping):
            raise ValueError(f"{where}: expected a JSON object, got {type(d).__name__}")
        for field in ("modes", "stats"):
            if not isinstance(d.get(field), Mapping):
                raise ValueError(f"{where}: missing or malformed field {field!r} (expected an object)")
        stats: dict[str, dict[str, np.ndarray]] = {}
        for key, st in d["stats"].items():
            if not isinstance(st, Mapping):
                raise ValueError(f"{where}: stats for key {key!r} must be an object of name -> list")
            stats[key] = {}
            for name, v in st.items():
                try:
                    stats[key][name] = np.asarray(v, dtype=np.float64).reshape(-1)
                except (TypeError, ValueError) as e:
                    raise ValueError(f"{where}: key {key!r}, stat {name!r}: not a list of numbers") from e
        try:
            return cls(stats, dict(d["modes"]), eps=float(d.get("eps", 1e-8)))
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from e

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Normalizer:
        return cls.from_dict(read_json(path, "normalizer file"), where=f"normalizer file {path}")

    @classmethod
    def from_accumulators(
        cls, accs: Mapping[str, StatsAccumulator], modes: Mapping[str, str], eps: float = 1e-8
    ) -> Normalizer:
        return cls({k: a.result() for k, a in accs.items()}, modes, eps)

    def __repr__(self) -> str:
        return f"Normalizer(modes={self.modes})"


def rank_error_bound(count: int, capacity: int = DEFAULT_CAPACITY) -> float:
    """Documented bound on the sketch's relative rank error for `count` rows (0 while exact)."""
    if count <= capacity:
        return 0.0
    return (math.log2(count / capacity) + 2.0) / capacity

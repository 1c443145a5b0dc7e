"""`UniformBinTokenizer`: RT-2's scheme, N equal-width bins per dimension over a fixed range.

Input space: **normalised** actions. The processor maps raw actions to [-1, 1] with the dataset's
`vla.core.normalizer.Normalizer` (q99 mode by default) before this tokenizer, and un-maps after decode;
the default range is therefore [-1, 1]. A per-dimension `low`/`high` may be given instead (then the
tokenizer can take raw actions), or learnt from data with `fit_range=True` (per-dim min/max of `fit`).

Bin i of dimension d covers [low + i w, low + (i + 1) w) with w = (high - low) / n_bins; the last bin is
closed. Values outside [low, high] clip to the end bins. Decode returns bin centres, so an in-range value
round-trips with error <= w / 2. With 256 bins over [-1, 1], w = 2/256 = 0.0078125.

    tok = UniformBinTokenizer(n_bins=256, action_dim=7, chunk_len=1)
    ids = tok.encode(np.zeros((1, 7)))           # [7] -> all 128 (value 0 is the left edge of bin 128)
    tok.decode(ids).actions                      # [1, 7], each 0.00390625 (centre of bin 128)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from action_tokenizers.base import TokenizerArgumentError, fit_rows, header, per_dim
from action_tokenizers.bins import BinTokenizerBase

MAX_RANGE = 1e6  # |low|, |high|: bins of a wider range are wider than any action


class UniformBinTokenizer(BinTokenizerBase):
    """N equal-width bins per dimension over [low, high] (default [-1, 1], for normalised actions)."""

    name = "uniform"
    input_space = "normalized"

    def __init__(
        self,
        n_bins: int = 256,
        action_dim: int = 7,
        chunk_len: int = 1,
        low: Any = -1.0,
        high: Any = 1.0,
        fit_range: bool = False,
    ) -> None:
        super().__init__(n_bins, action_dim, chunk_len)
        who = "UniformBinTokenizer"
        if not isinstance(fit_range, (bool, np.bool_)):
            raise TokenizerArgumentError(who, "fit_range", "must be true or false", fit_range)
        self.fit_range = bool(fit_range)
        lo, hi = per_dim(low, self.action_dim, who, "low"), per_dim(high, self.action_dim, who, "high")
        if np.any(np.abs(np.r_[lo, hi]) > MAX_RANGE):
            raise TokenizerArgumentError(who, "low/high", f"must lie within +-{MAX_RANGE:g}", [low, high])
        if np.any(hi <= lo):  # (a constant dimension gets a tiny range only when fitted, fit_range=true)
            raise TokenizerArgumentError(who, "high", f"must be > low ({lo.tolist()})", high)
        self._set_range(low, high)
        self._fitted = not self.fit_range

    def _set_range(self, low: Any, high: Any) -> None:
        lo = per_dim(low, self.action_dim, "UniformBinTokenizer", "low")
        hi = per_dim(high, self.action_dim, "UniformBinTokenizer", "high")
        # A constant dimension (hi == lo) gets a tiny range so the bins stay well defined.
        hi = np.where(hi - lo > 1e-12, hi, lo + 1e-6)
        if np.any(hi < lo):
            raise ValueError(f"UniformBinTokenizer: high must be >= low, got low={lo}, high={hi}")
        self.low, self.high = lo, hi  # [D] each
        self.width = (hi - lo) / self.n_bins  # [D]

    @property
    def is_fitted(self) -> bool:
        return self._fitted

    def fit(self, actions: Any) -> UniformBinTokenizer:
        """Check the action layout; with fit_range=True, set low/high to the per-dim min/max."""
        rows = fit_rows(actions, self.action_dim, "UniformBinTokenizer")  # [M, D]
        if self.fit_range:
            self._set_range(rows.min(axis=0), rows.max(axis=0))
        self._fitted = True
        return self

    def encode_values(self, x: np.ndarray) -> np.ndarray:
        # x [..., D] -> ids [..., D]
        idx = np.floor((np.asarray(x, dtype=np.float64) - self.low) / self.width)
        return np.clip(idx, 0, self.n_bins - 1).astype(np.int64)

    def decode_values(self, ids: np.ndarray) -> np.ndarray:
        # ids [..., D] -> centres [..., D]
        return self.low + (np.asarray(ids, dtype=np.float64) + 0.5) * self.width

    def neutral_ids(self) -> np.ndarray:
        return self.encode_values(np.clip(0.0, self.low, self.high))

    def error_bound(self, actions: Any) -> np.ndarray:
        shape = np.shape(actions)
        return np.broadcast_to(self.width / 2.0, shape).copy()

    def to_dict(self) -> dict[str, Any]:
        d = header(self.name, self.action_dim, self.chunk_len)
        d.update(
            n_bins=self.n_bins,
            low=self.low.tolist(),
            high=self.high.tolist(),
            fit_range=self.fit_range,
            input_space=self.input_space,
        )
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UniformBinTokenizer:
        tok = cls(
            n_bins=d["n_bins"],
            action_dim=d["action_dim"],
            chunk_len=d["chunk_len"],
            low=d["low"],
            high=d["high"],
            fit_range=False,
        )
        tok.fit_range = bool(d.get("fit_range", False))
        return tok

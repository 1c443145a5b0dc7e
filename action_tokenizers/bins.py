"""Shared machinery of the per-dimension bin tokenizers (uniform RT-2 bins, quantile/OpenVLA bins).

A bin tokenizer maps every scalar of a chunk `[..., T, D]` to one id in [0, n_bins) on its own, so a chunk
is always `T * D` tokens, time-major (step 0's D tokens, then step 1's, ...). Subclasses supply the
element-wise codec on `[..., D]` arrays (`encode_values` / `decode_values`, vectorised, also usable per
step) and the id that stands for "no motion" (`neutral_ids`, used to fill missing tokens on decode).
This base turns that codec into the `ActionTokenizer` contract: strict `encode`, tolerant `decode`.
"""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Any

import numpy as np

from action_tokenizers.base import (
    DecodeResult,
    as_id_rows,
    check_chunks,
    int_argument,
    load_tokenizer,
    save_dict,
    shape_arguments,
    to_numpy_ids,
)

MAX_BINS = 65536  # ids per dimension (OpenVLA's 256; a vocabulary the language model appends or reuses)


class BinTokenizerBase(abc.ABC):
    """Base of fixed-length bin tokenizers; subclasses set `name`, `input_space` and the codec."""

    name = "bins"
    input_space = "normalized"

    def __init__(self, n_bins: int, action_dim: int, chunk_len: int) -> None:
        who = type(self).__name__
        self.n_bins = int_argument(n_bins, who, "n_bins", 2, MAX_BINS)
        self.action_dim, self.chunk_len = shape_arguments(action_dim, chunk_len, who)

    # --- subclass codec ------------------------------------------------------------------------------
    @abc.abstractmethod
    def encode_values(self, x: np.ndarray) -> np.ndarray:
        """Element-wise codec: x [..., D] float -> ids [..., D] int64 in [0, n_bins) (clipping)."""

    @abc.abstractmethod
    def decode_values(self, ids: np.ndarray) -> np.ndarray:
        """Inverse codec: ids [..., D] int64 in range -> values [..., D] float64 (bin centres)."""

    @abc.abstractmethod
    def neutral_ids(self) -> np.ndarray:
        """Ids [D] that decode closest to "no motion"; fill for missing tokens on decode."""

    @property
    def is_fitted(self) -> bool:
        return True

    # --- contract ------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.n_bins

    @property
    def tokens_per_chunk(self) -> int:
        return self.chunk_len * self.action_dim

    @property
    def max_tokens(self) -> int:
        return self.tokens_per_chunk

    def _require_fitted(self, what: str) -> None:
        if not self.is_fitted:
            raise ValueError(f"{type(self).__name__}.{what}: not fitted; call fit(actions) first")

    def encode(self, actions: Any) -> np.ndarray:
        """actions [..., T, D] -> ids int64 [..., T * D]; out-of-range values clip to the end bins."""
        self._require_fitted("encode")
        arr = check_chunks(actions, self.chunk_len, self.action_dim, type(self).__name__)
        ids = self.encode_values(arr)  # [..., T, D]
        return ids.reshape(*arr.shape[:-2], self.tokens_per_chunk)

    def decode(self, ids: Any) -> DecodeResult:
        """ids [..., T * D] (or ragged lists) -> DecodeResult(actions [..., T, D] float32, valid [...]).

        Never raises on token content: ids outside [0, vocab_size) are clipped, missing tokens are filled
        with the neutral id, extra tokens are dropped; each such chunk gets valid=False.
        """
        self._require_fitted("decode")
        L, T, D = self.tokens_per_chunk, self.chunk_len, self.action_dim
        ids = to_numpy_ids(ids)
        if isinstance(ids, np.ndarray) and ids.dtype.kind in "iu" and ids.ndim >= 1 and ids.shape[-1] == L:
            ids64 = ids.astype(np.int64, copy=False)
            bad = (ids64 < 0) | (ids64 >= self.n_bins)  # [..., L]
            clipped = np.clip(ids64, 0, self.n_bins - 1).reshape(*ids.shape[:-1], T, D)
            acts = self.decode_values(clipped).astype(np.float32)
            return DecodeResult(acts, np.asarray(~bad.any(axis=-1)))
        rows, batch = as_id_rows(ids)
        neutral = np.tile(self.neutral_ids(), T)  # [L]
        fixed = np.empty((len(rows), L), dtype=np.int64)
        valid = np.ones(len(rows), dtype=bool)
        for i, row in enumerate(rows):
            if row is None:
                fixed[i], valid[i] = neutral, False
                continue
            n = min(row.shape[0], L)
            fixed[i] = neutral
            fixed[i, :n] = np.clip(row[:n], 0, self.n_bins - 1)
            valid[i] = row.shape[0] == L and bool(np.all((row >= 0) & (row < self.n_bins)))
        acts = self.decode_values(fixed.reshape(-1, T, D)).astype(np.float32)
        return DecodeResult(acts.reshape(*batch, T, D), valid.reshape(batch))

    @abc.abstractmethod
    def error_bound(self, actions: Any) -> np.ndarray:
        """Largest decode error for any value in the bin of each value of `actions` [..., D] (input units).

        Half the bin width for centre-decoded bins."""

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description, starting with `base.header(...)`."""

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer as JSON (atomically)."""
        self._require_fitted("save")
        return save_dict(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Any:
        tok = load_tokenizer(path)
        if not isinstance(tok, cls):
            raise ValueError(f"{path}: holds a {type(tok).__name__}, not a {cls.__name__}")
        return tok

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_bins={self.n_bins}, D={self.action_dim}, T={self.chunk_len})"

"""Chunking trajectories and measuring a tokenizer: the shared core of `vla tokenizer` and the benchmark.

`chunk_episodes` cuts per-episode action arrays `[T_e, D]` into windows `[N, T, D]`. `TokenizerPipeline`
puts a tokenizer where it belongs in the pipeline: "normalized" tokenizers get actions mapped by the
dataset Normalizer (q99) and their output un-mapped; "raw" tokenizers see raw actions. `evaluate` then
reports, for raw chunks `[N, T, D]`, the reconstruction error per dimension in raw and normalised units,
tokens per chunk (mean/min/max), the invalid-decode count and encode/decode throughput.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from action_tokenizers.base import ActionTokenizer
from vla.core.normalizer import Normalizer, StatsAccumulator
from vla.core.types import ACTION_KEY


def chunk_episodes(episodes: Sequence[np.ndarray], chunk_len: int, stride: int | None = None) -> np.ndarray:
    """Episodes of actions [T_e, D] -> windows [N, T, D] (start every `stride` steps, default T).

    Windows never cross an episode boundary; an episode shorter than T contributes none.
    """
    stride = int(stride or chunk_len)
    if chunk_len < 1 or stride < 1:
        raise ValueError(f"chunk_episodes: chunk_len and stride must be >= 1, got {chunk_len}, {stride}")
    out = []
    dim = None
    for i, ep in enumerate(episodes):
        a = np.asarray(ep, dtype=np.float64)
        if a.ndim != 2 or (dim is not None and a.shape[1] != dim):
            raise ValueError(f"episode {i}: expected actions [T, {dim or 'D'}], got {a.shape}")
        dim = a.shape[1]
        starts = range(0, a.shape[0] - chunk_len + 1, stride)
        out += [a[s : s + chunk_len] for s in starts]
    if not out:
        raise ValueError(f"no episode has {chunk_len} or more steps; cannot make chunks")
    return np.stack(out)  # [N, T, D]


def fit_normalizer(rows: np.ndarray, mode: str = "q99") -> Normalizer:
    """The dataset normaliser for `rows` [..., D] (the project's Normalizer, key 'action')."""
    acc = StatsAccumulator(rows.shape[-1]).update(rows)
    return Normalizer.from_accumulators({ACTION_KEY: acc}, {ACTION_KEY: mode})


@dataclass
class TokenizerPipeline:
    """A tokenizer plus the dataset normaliser in front of it when its input space is 'normalized'."""

    tokenizer: ActionTokenizer
    normalizer: Normalizer | None = None

    def __post_init__(self) -> None:
        if self.tokenizer.input_space == "normalized" and self.normalizer is None:
            raise ValueError(
                f"{type(self.tokenizer).__name__} expects normalised actions: give the dataset Normalizer"
            )

    def to_tokenizer_space(self, raw: np.ndarray) -> np.ndarray:
        if self.tokenizer.input_space == "normalized":
            return self.normalizer.normalize(ACTION_KEY, raw)
        return np.asarray(raw, dtype=np.float64)

    def from_tokenizer_space(self, x: np.ndarray) -> np.ndarray:
        if self.tokenizer.input_space == "normalized":
            return self.normalizer.unnormalize(ACTION_KEY, x)
        return np.asarray(x, dtype=np.float64)

    def fit(self, raw_chunks: np.ndarray) -> TokenizerPipeline:
        self.tokenizer.fit(self.to_tokenizer_space(raw_chunks))
        return self

    def roundtrip(self, raw_chunks: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
        """raw [N, T, D] -> (ids, decoded raw [N, T, D], valid [N])."""
        ids = self.tokenizer.encode(self.to_tokenizer_space(raw_chunks))
        dec = self.tokenizer.decode(ids)
        return ids, self.from_tokenizer_space(dec.actions), dec.valid


def token_counts(ids: Any, n: int) -> np.ndarray:
    """Tokens per chunk [N] for fixed ([N, L] array) or variable (list of [L_i]) encodings."""
    if isinstance(ids, np.ndarray):
        return np.full(n, ids.shape[-1], dtype=np.int64)
    return np.array([len(r) for r in ids], dtype=np.int64)


def evaluate(
    pipe: TokenizerPipeline, raw_chunks: np.ndarray, reference: Normalizer, timing: bool = True
) -> dict:
    """Reconstruction error and token figures of `pipe` on raw chunks [N, T, D].

    `reference` is the dataset normaliser used to express errors in normalised units for every tokenizer
    (so raw- and normalised-space tokenizers compare on one scale).
    """
    raw = np.asarray(raw_chunks, dtype=np.float64)
    n, T, D = raw.shape
    t0 = time.perf_counter()
    ids = pipe.tokenizer.encode(pipe.to_tokenizer_space(raw))
    t1 = time.perf_counter()
    dec = pipe.tokenizer.decode(ids)
    t2 = time.perf_counter()
    rec = pipe.from_tokenizer_space(dec.actions)
    err_raw = np.abs(rec - raw).reshape(-1, D)  # [N*T, D]
    # Normalised units: compare against the clipped normalised target (q99 clipping is the normaliser's
    # doing, not the tokenizer's).
    ref_true = reference.normalize(ACTION_KEY, raw).reshape(-1, D)
    ref_rec = reference.normalize(ACTION_KEY, rec).reshape(-1, D)
    err_norm = np.abs(ref_rec - ref_true)
    counts = token_counts(ids, n)
    out = {
        "chunks": int(n),
        "chunk_len": int(T),
        "tokens_per_chunk_mean": float(counts.mean()),
        "tokens_per_chunk_min": int(counts.min()),
        "tokens_per_chunk_max": int(counts.max()),
        "vocab_size": int(pipe.tokenizer.vocab_size),
        "invalid_decodes": int((~np.asarray(dec.valid)).sum()),
        "mae_raw_per_dim": err_raw.mean(axis=0).tolist(),
        "max_raw_per_dim": err_raw.max(axis=0).tolist(),
        "mae_norm": float(err_norm.mean()),
        "max_norm": float(err_norm.max()),
        "mae_norm_per_dim": err_norm.mean(axis=0).tolist(),
    }
    if timing:
        out["encode_actions_per_s"] = float(n * T / max(t1 - t0, 1e-9))
        out["decode_actions_per_s"] = float(n * T / max(t2 - t1, 1e-9))
    return out

"""`QuantileBinTokenizer` and its OpenVLA preset: q01/q99 normalisation, then 256 bins on [-1, 1].

Input space: **raw** actions. The tokenizer owns a q99 `vla.core.normalizer.Normalizer` fitted in
`fit` (the project's one normaliser, saved inside the tokenizer JSON) and returns raw actions from
`decode`; the processor must not normalise actions again for it.

OpenVLA's scheme (`edges="linspace"`, the `openvla` registry entry), reproduced exactly:

    a_n  = clip(2 (a - q01) / (q99 - q01) - 1, -1, 1)          # BOUNDS_Q99 (dims with mask=False: a_n = a)
    bins = np.linspace(-1, 1, 256)                             # 256 edges -> 255 intervals
    b    = np.digitize(clip(a_n, -1, 1), bins)                 # b in 1..256 (256 only for a_n == 1.0)
    LM id = vocab_size - b                                     # Llama 2: 32000 - b in 31744..31999
    decode: k = clip(vocab_size - id - 1, 0, 254); a_n = centres[k], centres = (bins[:-1] + bins[1:]) / 2

Our tokenizer id is `b - 1` in [0, 256) (vocab_size 256); `action_tokenizers.vocab.ActionVocab.openvla`
maps it to the LM id `base_vocab - (id + 1)` = `vocab_size - b`. The off-by-one: `digitize` counts from
1, there are 256 edges but only 255 centres, so b = 256 (a_n exactly 1.0) and b = 255 both decode to
centres[254]. Worked example (hand-checked in the tests): a_n = 0.0 lies in [bins[127], bins[128]) =
[-0.00392, 0.00392), so b = 128, our id 127, LM id 32000 - 128 = 31872; decoding 31872 gives
k = 32000 - 31872 - 1 = 127 and centres[127] = 0.0. a_n = 1.0 gives b = 256, LM id 31744, decoded to
centres[254] = 0.99608; a_n = -1.0 gives b = 1, LM id 31999, decoded to centres[0] = -0.99608.
In-range round-trip error is <= half a bin width, 1/255 in normalised units.

`edges="quantile"` instead places n_bins equal-mass bins per dimension at the empirical quantiles of the
normalised fit data (finer bins where actions are dense) and decodes each bin to the mean of the fit
values inside it (exact for point masses such as a binary gripper; midpoint for empty bins), so the error
is at most the distance from that value to the bin's farther edge (`error_bound`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from action_tokenizers.base import fit_rows, header
from action_tokenizers.bins import BinTokenizerBase
from vla.core.normalizer import Normalizer, StatsAccumulator
from vla.core.types import ACTION_KEY

EDGE_MODES = ("linspace", "quantile")


class QuantileBinTokenizer(BinTokenizerBase):
    """q01/q99 normalisation (own Normalizer) then linspace (OpenVLA) or equal-mass quantile bins."""

    name = "quantile"
    input_space = "raw"

    def __init__(
        self,
        n_bins: int = 256,
        action_dim: int = 7,
        chunk_len: int = 1,
        edges: str = "linspace",
        mask: Any = None,
    ) -> None:
        super().__init__(n_bins, action_dim, chunk_len)
        if edges not in EDGE_MODES:
            raise ValueError(f"QuantileBinTokenizer: edges must be one of {EDGE_MODES}, got {edges!r}")
        self.edges = edges
        m = np.ones(self.action_dim, dtype=bool) if mask is None else np.asarray(mask, dtype=bool).reshape(-1)
        if m.shape != (self.action_dim,):
            raise ValueError(f"QuantileBinTokenizer: mask must have {self.action_dim} entries, got {m.shape}")
        self.mask = m  # [D] True: q99-normalise this dim; False: bin the raw value on [-1, 1]
        self.normalizer: Normalizer | None = None
        self.bin_edges = np.linspace(-1.0, 1.0, self.n_bins)  # linspace mode: [n_bins] (OpenVLA)
        self.centres = (self.bin_edges[:-1] + self.bin_edges[1:]) / 2.0  # [n_bins - 1]
        self.q_edges: np.ndarray | None = None  # quantile mode: [D, n_bins + 1]
        self.q_centres: np.ndarray | None = None  # quantile mode: [D, n_bins] decode values

    @property
    def is_fitted(self) -> bool:
        return self.normalizer is not None and (self.edges == "linspace" or self.q_edges is not None)

    def fit(self, actions: Any) -> QuantileBinTokenizer:
        """Compute q01/q99 with the project's StatsAccumulator; in quantile mode also the bin edges."""
        rows = fit_rows(actions, self.action_dim, type(self).__name__)  # [M, D]
        acc = StatsAccumulator(self.action_dim).update(rows, where=f"{type(self).__name__}.fit")
        self.normalizer = Normalizer.from_accumulators({ACTION_KEY: acc}, {ACTION_KEY: "q99"})
        if self.edges == "quantile":
            xn = self.normalize(rows)  # [M, D]
            q = np.quantile(xn, np.linspace(0.0, 1.0, self.n_bins + 1), axis=0).T  # [D, n_bins + 1]
            q[:, 0], q[:, -1] = -1.0, 1.0  # the outer bins reach the clip range
            self.q_edges = np.maximum.accumulate(q, axis=1)
            self.q_centres = self._conditional_means(xn)
        return self

    # --- normalisation (delegates to the project's Normalizer) ---------------------------------------
    def _require_normalizer(self, what: str) -> None:
        if self.normalizer is None:
            raise ValueError(f"{type(self).__name__}.{what}: not fitted; call fit(actions) first")

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """Raw [..., D] -> [-1, 1] (masked dims pass through, then everything clips to [-1, 1])."""
        self._require_normalizer("normalize")
        x = np.asarray(x, dtype=np.float64)
        xn = self.normalizer.normalize(ACTION_KEY, x)
        return np.clip(np.where(self.mask, xn, x), -1.0, 1.0)

    def unnormalize(self, xn: np.ndarray) -> np.ndarray:
        self._require_normalizer("unnormalize")
        xn = np.asarray(xn, dtype=np.float64)
        return np.where(self.mask, self.normalizer.unnormalize(ACTION_KEY, xn), xn)

    def _conditional_means(self, xn: np.ndarray) -> np.ndarray:
        """Decode value per bin [D, n_bins]: the mean of the fit values in the bin (Lloyd-Max style;
        exact for point masses such as a binary gripper), or the bin midpoint for an empty bin."""
        self.q_centres = (self.q_edges[:, :-1] + self.q_edges[:, 1:]) / 2.0  # midpoints first
        ids = self.encode_normalized(xn)  # [M, D]
        out = self.q_centres.copy()
        for d in range(self.action_dim):
            counts = np.bincount(ids[:, d], minlength=self.n_bins)
            sums = np.bincount(ids[:, d], weights=xn[:, d], minlength=self.n_bins)
            filled = counts > 0
            out[d, filled] = sums[filled] / counts[filled]
        return out

    # --- codec ---------------------------------------------------------------------------------------
    def encode_normalized(self, xn: np.ndarray) -> np.ndarray:
        # xn [..., D] in [-1, 1] -> ids [..., D]
        if self.edges == "linspace":
            return (np.digitize(xn, self.bin_edges) - 1).astype(np.int64)  # OpenVLA's b - 1
        out = np.empty(xn.shape, dtype=np.int64)
        for d in range(self.action_dim):
            out[..., d] = np.searchsorted(self.q_edges[d, 1:-1], xn[..., d], side="right")
        return out

    def decode_normalized(self, ids: np.ndarray) -> np.ndarray:
        # ids [..., D] -> normalised bin centres [..., D]
        ids = np.asarray(ids, dtype=np.int64)
        if self.edges == "linspace":
            return self.centres[np.clip(ids, 0, self.centres.shape[0] - 1)]
        return self.q_centres[np.arange(self.action_dim), ids]

    def encode_values(self, x: np.ndarray) -> np.ndarray:
        return self.encode_normalized(self.normalize(x))

    def decode_values(self, ids: np.ndarray) -> np.ndarray:
        return self.unnormalize(self.decode_normalized(ids))

    def neutral_ids(self) -> np.ndarray:
        return self.encode_normalized(np.zeros(self.action_dim))

    def normalized_error_bound(self, xn: np.ndarray) -> np.ndarray:
        """Largest decode error (normalised units) of any value in the bin of each xn [..., D].

        linspace: half the bin width, 1 / (n_bins - 1). quantile: the distance from the bin's decode
        value to its farther edge.
        """
        ids = self.encode_normalized(np.asarray(xn, dtype=np.float64))
        if self.edges == "linspace":
            return np.full(ids.shape, 1.0 / (self.n_bins - 1))
        lo, hi = self.q_edges[:, :-1], self.q_edges[:, 1:]  # [D, n_bins]
        bound = np.maximum(self.q_centres - lo, hi - self.q_centres)
        return bound[np.arange(self.action_dim), ids]

    def error_bound(self, actions: Any) -> np.ndarray:
        """The normalised bound in raw units (times (q99 - q01) / 2 on normalised dims)."""
        x = np.asarray(actions, dtype=np.float64)
        half = self.normalized_error_bound(self.normalize(x))
        st = self.normalizer.stats[ACTION_KEY]
        scale = np.where(self.mask, (st["q99"] - st["q01"]) / 2.0, 1.0)
        return half * scale

    # --- persistence ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = header(self.name, self.action_dim, self.chunk_len)
        d.update(
            n_bins=self.n_bins,
            edges=self.edges,
            mask=self.mask.tolist(),
            input_space=self.input_space,
            normalizer=self.normalizer.to_dict(),
            q_edges=None if self.q_edges is None else self.q_edges.tolist(),
            q_centres=None if self.q_centres is None else self.q_centres.tolist(),
        )
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QuantileBinTokenizer:
        kwargs = dict(n_bins=d["n_bins"], action_dim=d["action_dim"], chunk_len=d["chunk_len"])
        kwargs["mask"] = d["mask"]
        if cls is QuantileBinTokenizer:
            kwargs["edges"] = d["edges"]
        tok = cls(**kwargs)
        tok.normalizer = Normalizer.from_dict(d["normalizer"], where="tokenizer normalizer")
        if d.get("q_edges") is not None:
            q = np.asarray(d["q_edges"], dtype=np.float64)
            if q.shape != (tok.action_dim, tok.n_bins + 1):
                raise ValueError(f"q_edges: expected shape {(tok.action_dim, tok.n_bins + 1)}, got {q.shape}")
            c = np.asarray(d["q_centres"], dtype=np.float64)
            if c.shape != (tok.action_dim, tok.n_bins):
                raise ValueError(f"q_centres: expected shape {(tok.action_dim, tok.n_bins)}, got {c.shape}")
            tok.q_edges, tok.q_centres = q, c
        return tok


class OpenVLATokenizer(QuantileBinTokenizer):
    """OpenVLA's exact discretisation: q99 bounds, 256 linspace edges, per-step tokens (chunk_len 1)."""

    name = "openvla"

    def __init__(self, n_bins: int = 256, action_dim: int = 7, chunk_len: int = 1, mask: Any = None) -> None:
        super().__init__(n_bins, action_dim, chunk_len, edges="linspace", mask=mask)

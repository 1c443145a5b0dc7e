"""Point-cloud distances: Chamfer distance and F-score, batched in torch (numpy arrays accepted).

    chamfer_distance(a, b)   a [B,N,3] / [N,3], b [B,M,3] / [M,3] -> [B] (or scalar): mean over a of the
                             distance to the nearest point of b, plus the same from b to a (metres, not
                             squared: "L1 Chamfer" as in 3D-VLA / Point-E evaluations)
    f_score(a, b, tau)       harmonic mean of precision (share of a within tau of b) and recall (share of
                             b within tau of a), in [0, 1]; tau in metres (default 1 cm)

Both are symmetric in (a, b) and invariant to the order of points within each cloud. Only xyz is used:
extra channels (colour) beyond the first three are ignored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _as_batch(x: Any, name: str) -> tuple[torch.Tensor, bool]:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    single = t.ndim == 2
    if single:
        t = t.unsqueeze(0)
    if t.ndim != 3 or t.shape[-1] < 3 or t.shape[1] == 0:
        raise ValueError(
            f"{name}: expected a point cloud [N,3+] or [B,N,3+] with N > 0, got {tuple(t.shape)}"
        )
    return t[..., :3].to(torch.float64 if t.dtype == torch.float64 else torch.float32), single


def nearest_distances(a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance from each point of a to b [B,N], from each point of b to a [B,M])."""
    ta, single_a = _as_batch(a, "a")
    tb, single_b = _as_batch(b, "b")
    tb = tb.to(ta.dtype)
    if ta.shape[0] != tb.shape[0]:
        raise ValueError(f"batch sizes differ: a {tuple(ta.shape)}, b {tuple(tb.shape)}")
    d = torch.cdist(ta, tb, compute_mode="donot_use_mm_for_euclid_dist")  # [B,N,M], exact
    return d.min(dim=2).values, d.min(dim=1).values


def chamfer_distance(a: Any, b: Any) -> torch.Tensor:
    """Symmetric Chamfer distance [B] (scalar for unbatched input): mean NN distance a->b plus b->a."""
    da, db = nearest_distances(a, b)
    out = da.mean(dim=1) + db.mean(dim=1)
    return out[0] if np.ndim(a) == 2 and np.ndim(b) == 2 else out


def f_score(a: Any, b: Any, tau: float = 0.01) -> torch.Tensor:
    """F-score at threshold `tau` metres [B] (scalar for unbatched input), in [0, 1]."""
    if tau <= 0:
        raise ValueError(f"f_score: tau must be > 0, got {tau}")
    da, db = nearest_distances(a, b)
    precision = (da < tau).to(da.dtype).mean(dim=1)
    recall = (db < tau).to(db.dtype).mean(dim=1)
    denom = precision + recall
    out = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-12), torch.zeros_like(denom))
    return out[0] if np.ndim(a) == 2 and np.ndim(b) == 2 else out

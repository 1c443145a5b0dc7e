"""Non-visual encoders that turn robot inputs into LM tokens (PaLM-E's "multimodal sentences").

    StateEncoder        proprioceptive state [B,S] -> [B,k,H] by a 2-layer MLP
    PointNetEncoder     point cloud [B,N,C] -> [B,G,H]: farthest-point sampling of G centres, k-nearest
                        grouping, a shared PointNet MLP on centre-relative points, max-pool per group
                        (PointNet++, Qi et al. 2017), plus an embedding of each centre's position
    PointPatchEncoder   the same groups followed by one transformer layer over the G group tokens
                        (Point-BERT / Point-MAE style point patches)

Both point encoders are permutation invariant: FPS starts at the point farthest from the centroid (not at
index 0), so the set of centres and their order depend only on the point set, never on its storage order.
Named in the POINT_ENCODERS table (`pointnet`, `point_patch`).
"""

from __future__ import annotations

import torch
from torch import nn

from vla.backbones.config import PointEncoderConfig, StateEncoderConfig
from vla.core.registry import Registry

POINT_ENCODERS: Registry[type[PointNetEncoder]] = Registry(
    "point-cloud encoder",
    {
        "pointnet": "vla.backbones.tokens:PointNetEncoder",
        "point_patch": "vla.backbones.tokens:PointPatchEncoder",
    },
)


def list_point_encoders() -> list[str]:
    """Every point-cloud encoder name `PointEncoderConfig.name` takes (built-ins and plugins)."""
    return POINT_ENCODERS.names()


class StateEncoder(nn.Module):
    """state [B,S] -> k tokens [B,k,H] (MLP S -> hidden -> k*H)."""

    def __init__(self, cfg: StateEncoderConfig, out_dim: int):
        super().__init__()
        if cfg.dim <= 0 or cfg.num_tokens <= 0:
            raise ValueError(f"state encoder: dim and num_tokens must be positive, got {cfg}")
        self.dim, self.num_tokens, self.out_dim = cfg.dim, cfg.num_tokens, out_dim
        hidden = cfg.hidden or out_dim
        self.net = nn.Sequential(
            nn.Linear(cfg.dim, hidden), nn.GELU(), nn.Linear(hidden, cfg.num_tokens * out_dim)
        )

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        if state.ndim != 2 or state.shape[1] != self.dim or not torch.is_floating_point(state):
            raise ValueError(
                f"state encoder: expected float state [B,{self.dim}], got {tuple(state.shape)} {state.dtype}"
            )
        out = self.net(state)  # [B,k*H]
        return out.view(state.shape[0], self.num_tokens, self.out_dim)  # [B,k*H] -> [B,k,H]


def farthest_point_sample(xyz: torch.Tensor, num: int) -> torch.Tensor:
    """Indices [B,G] of `num` farthest-point-sampled centres of xyz [B,N,3], starting from the point
    farthest from the centroid (so the result does not depend on the order of the points)."""
    b, n, _ = xyz.shape
    centroid = xyz.mean(dim=1, keepdim=True)  # [B,1,3]
    idx = torch.empty(b, num, dtype=torch.long, device=xyz.device)
    cur = (xyz - centroid).square().sum(-1).argmax(dim=1)  # [B]
    dist = torch.full((b, n), float("inf"), device=xyz.device)
    rows = torch.arange(b, device=xyz.device)
    for g in range(num):
        idx[:, g] = cur
        d = (xyz - xyz[rows, cur].unsqueeze(1)).square().sum(-1)  # [B,N]
        dist = torch.minimum(dist, d)
        cur = dist.argmax(dim=1)
    return idx


class PointNetEncoder(nn.Module):
    """FPS + kNN grouping + PointNet MLP + max-pool: points [B,N,C] -> tokens [B,G,H]."""

    def __init__(self, cfg: PointEncoderConfig, out_dim: int):
        super().__init__()
        if cfg.num_groups <= 0 or cfg.group_size <= 0 or cfg.in_features < 3:
            raise ValueError(
                f"point encoder: need num_groups > 0, group_size > 0, in_features >= 3; got {cfg}"
            )
        self.cfg, self.out_dim = cfg, out_dim
        w = cfg.width
        self.local = nn.Sequential(
            nn.Linear(cfg.in_features, w), nn.GELU(), nn.Linear(w, w), nn.GELU(), nn.Linear(w, w)
        )
        self.centre = nn.Sequential(nn.Linear(3, w), nn.GELU(), nn.Linear(w, w))
        self.proj = nn.Linear(w, out_dim)

    def check(self, points: torch.Tensor) -> None:
        c = self.cfg
        if points.ndim != 3 or points.shape[-1] != c.in_features or not torch.is_floating_point(points):
            raise ValueError(
                f"point encoder: expected float points [B,N,{c.in_features}], got "
                f"{tuple(points.shape)} {points.dtype}"
            )
        if points.shape[1] < max(c.num_groups, c.group_size):
            raise ValueError(
                f"point encoder: need N >= {max(c.num_groups, c.group_size)} points, got {points.shape[1]}"
            )

    def group_features(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """points [B,N,C] -> (group features [B,G,W], centres [B,G,3])."""
        self.check(points)
        xyz = points[..., :3]  # [B,N,3]
        b = points.shape[0]
        rows = torch.arange(b, device=points.device)
        centres = xyz[rows.unsqueeze(1), farthest_point_sample(xyz, self.cfg.num_groups)]  # [B,G,3]
        knn = torch.cdist(centres, xyz).topk(self.cfg.group_size, dim=-1, largest=False).indices  # [B,G,K]
        grouped = points[rows.view(b, 1, 1), knn]  # [B,N,C] -> [B,G,K,C]
        local = torch.cat([grouped[..., :3] - centres.unsqueeze(2), grouped[..., 3:]], dim=-1)  # [B,G,K,C]
        feats = self.local(local).amax(dim=2)  # [B,G,K,W] -> max over K -> [B,G,W]
        return feats + self.centre(centres), centres

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        feats, _ = self.group_features(points)
        return self.proj(feats)  # [B,G,W] -> [B,G,H]


class PointPatchEncoder(PointNetEncoder):
    """Point patches (PointNet groups) followed by one transformer encoder layer over the G tokens."""

    def __init__(self, cfg: PointEncoderConfig, out_dim: int):
        super().__init__(cfg, out_dim)
        heads = next(h for h in (4, 2, 1) if cfg.width % h == 0)
        self.mixer = nn.TransformerEncoderLayer(
            cfg.width, heads, 2 * cfg.width, dropout=0.0, batch_first=True, norm_first=True
        )

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        feats, _ = self.group_features(points)
        return self.proj(self.mixer(feats))  # [B,G,W] -> [B,G,H]


def build_point_encoder(cfg: PointEncoderConfig, out_dim: int) -> nn.Module:
    return POINT_ENCODERS.get(cfg.name)(cfg, out_dim)

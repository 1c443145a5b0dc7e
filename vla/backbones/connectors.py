"""Connectors (projectors) from vision features to LM tokens, all [B,P,E] -> [B,Q,H], named in CONNECTORS.

    name          source                                   tokens Q
    linear        LLaVA (Liu et al. 2023)                  P
    mlp2x_gelu    LLaVA-1.5 (Liu et al. 2023b)             P
    token_merge   MiniGPT-v2 (Chen et al. 2023)            ceil(P / 4) (4 adjacent tokens concatenated)
    perceiver     Flamingo (Alayrac et al. 2022)           num_queries learned latents (64)
    qformer       BLIP-2 (Li et al. 2023)                  num_queries learned queries (32)
    cross_attn    Qwen-VL (Bai et al. 2023)                num_queries (256), one cross-attention layer

E is the encoder width, H the LM hidden size, P the number of patches. Query-based connectors work at an
internal width `width` (default H) and project to H at the end. `ConnectorConfig` zeros mean the defaults.

    conn = build_connector(ConnectorConfig(name="perceiver"), in_dim=1152, out_dim=896)
    tokens = conn(patches)                    # [B,729,1152] -> [B,64,896]
    conn.num_tokens(729)                      # 64
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vla.backbones.config import ConnectorConfig
from vla.backbones.vision import sincos_2d
from vla.core.registry import Registry

CONNECTORS: Registry[type[Connector]] = Registry(
    "connector",
    {
        "linear": "vla.backbones.connectors:LinearConnector",
        "mlp2x_gelu": "vla.backbones.connectors:MLPConnector",
        "token_merge": "vla.backbones.connectors:TokenMergeConnector",
        "perceiver": "vla.backbones.connectors:PerceiverResampler",
        "qformer": "vla.backbones.connectors:QFormerConnector",
        "cross_attn": "vla.backbones.connectors:CrossAttnCompressor",
    },
)


def list_connectors() -> list[str]:
    """Every connector name `ConnectorConfig.name` takes (built-ins and registered plugins)."""
    return CONNECTORS.names()


def _heads(width: int, requested: int) -> int:
    if requested:
        if width % requested:
            raise ValueError(f"connector: width {width} is not divisible by num_heads {requested}")
        return requested
    return next(h for h in (8, 4, 2, 1) if width % h == 0)


class Connector(nn.Module):
    """Base: remembers in/out widths; `num_tokens(P)` gives Q; `check` validates [B,P,E] input."""

    name = ""
    default_queries = 0

    def __init__(self, cfg: ConnectorConfig, in_dim: int, out_dim: int):
        super().__init__()
        self.cfg = cfg
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)
        self.width = int(cfg.width or out_dim)
        self.queries = int(cfg.num_queries or self.default_queries)

    def num_tokens(self, num_patches: int) -> int:
        return self.queries

    def check(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(
                f"connector {self.name!r}: expected features [B,P,{self.in_dim}], got {tuple(x.shape)}"
            )


def build_connector(cfg: ConnectorConfig, in_dim: int, out_dim: int) -> Connector:
    return CONNECTORS.get(cfg.name)(cfg, in_dim, out_dim)


class LinearConnector(Connector):
    """LLaVA's single linear projection; one LM token per patch (Q = P)."""

    name = "linear"

    def __init__(self, cfg: ConnectorConfig, in_dim: int, out_dim: int):
        super().__init__(cfg, in_dim, out_dim)
        self.proj = nn.Linear(in_dim, out_dim)

    def num_tokens(self, num_patches: int) -> int:
        return num_patches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        return self.proj(x)  # [B,P,E] -> [B,P,H]


class MLPConnector(Connector):
    """LLaVA-1.5's 2-layer MLP with GELU; Q = P."""

    name = "mlp2x_gelu"

    def __init__(self, cfg: ConnectorConfig, in_dim: int, out_dim: int):
        super().__init__(cfg, in_dim, out_dim)
        self.net = nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))

    def num_tokens(self, num_patches: int) -> int:
        return num_patches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        return self.net(x)  # [B,P,E] -> [B,P,H]


class TokenMergeConnector(Connector):
    """MiniGPT-v2: concatenate every 4 adjacent tokens, then a linear layer; Q = ceil(P / 4).

    When P is not a multiple of 4 (SigLIP So400m/14 at 384 px: 729), the sequence is zero-padded at the
    end to the next multiple first (729 -> 732 -> 183 tokens).
    """

    name = "token_merge"
    merge = 4

    def __init__(self, cfg: ConnectorConfig, in_dim: int, out_dim: int):
        super().__init__(cfg, in_dim, out_dim)
        self.proj = nn.Linear(in_dim * self.merge, out_dim)

    def num_tokens(self, num_patches: int) -> int:
        return -(-num_patches // self.merge)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        b, p, e = x.shape
        q = self.num_tokens(p)
        if q * self.merge != p:
            x = torch.nn.functional.pad(x, (0, 0, 0, q * self.merge - p))  # [B,P,E] -> [B,4Q,E] zero tail
        merged = x.reshape(b, q, self.merge * e)  # [B,4Q,E] -> [B,Q,4E] (4 consecutive tokens side by side)
        return self.proj(merged)  # [B,Q,4E] -> [B,Q,H]


class _FFN(nn.Sequential):
    def __init__(self, width: int, mult: int = 4):
        super().__init__(
            nn.LayerNorm(width), nn.Linear(width, mult * width), nn.GELU(), nn.Linear(mult * width, width)
        )


class PerceiverResampler(Connector):
    """Flamingo's Perceiver resampler: learned latents cross-attend to [features; latents] (depth 2, Q=64).

    Flamingo uses 6 blocks and 64 latents; `depth` and `num_queries` override.
    """

    name = "perceiver"
    default_queries = 64

    def __init__(self, cfg: ConnectorConfig, in_dim: int, out_dim: int):
        super().__init__(cfg, in_dim, out_dim)
        d, heads = self.width, _heads(self.width, cfg.num_heads)
        self.latents = nn.Parameter(torch.randn(self.queries, d) * 0.02)  # [Q,D]
        self.in_proj = nn.Linear(in_dim, d)
        depth = cfg.depth or 2
        self.norm_x = nn.ModuleList(nn.LayerNorm(d) for _ in range(depth))
        self.norm_q = nn.ModuleList(nn.LayerNorm(d) for _ in range(depth))
        self.attn = nn.ModuleList(nn.MultiheadAttention(d, heads, batch_first=True) for _ in range(depth))
        self.ffn = nn.ModuleList(_FFN(d) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        x = self.in_proj(x)  # [B,P,E] -> [B,P,D]
        lat = self.latents.unsqueeze(0).expand(x.shape[0], -1, -1)  # [Q,D] -> [B,Q,D]
        for nx, nq, attn, ffn in zip(self.norm_x, self.norm_q, self.attn, self.ffn):
            q = nq(lat)
            kv = torch.cat([nx(x), q], dim=1)  # [B,P+Q,D]: latents also attend to themselves
            lat = lat + attn(q, kv, kv, need_weights=False)[0]
            lat = lat + ffn(lat)
        return self.out(lat)  # [B,Q,D] -> [B,Q,H]


class QFormerConnector(Connector):
    """BLIP-2's querying transformer: learned queries with self-attention in every block and
    cross-attention to the image features in every other block (depth 2, Q=32); then a linear to H."""

    name = "qformer"
    default_queries = 32

    def __init__(self, cfg: ConnectorConfig, in_dim: int, out_dim: int):
        super().__init__(cfg, in_dim, out_dim)
        d, heads = self.width, _heads(self.width, cfg.num_heads)
        depth = cfg.depth or 2
        self.queries_emb = nn.Parameter(torch.randn(self.queries, d) * 0.02)  # [Q,D]
        self.kv_proj = nn.Linear(in_dim, d)
        self.kv_norm = nn.LayerNorm(d)
        self.self_norm = nn.ModuleList(nn.LayerNorm(d) for _ in range(depth))
        self.self_attn = nn.ModuleList(
            nn.MultiheadAttention(d, heads, batch_first=True) for _ in range(depth)
        )
        self.cross_layers = [i for i in range(depth) if i % 2 == 0]  # blocks 0, 2, 4, ... cross-attend
        self.cross_norm = nn.ModuleDict({str(i): nn.LayerNorm(d) for i in self.cross_layers})
        self.cross_attn = nn.ModuleDict(
            {str(i): nn.MultiheadAttention(d, heads, batch_first=True) for i in self.cross_layers}
        )
        self.ffn = nn.ModuleList(_FFN(d) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        kv = self.kv_norm(self.kv_proj(x))  # [B,P,E] -> [B,P,D]
        q = self.queries_emb.unsqueeze(0).expand(x.shape[0], -1, -1)  # [Q,D] -> [B,Q,D]
        for i, (sn, sa, ffn) in enumerate(zip(self.self_norm, self.self_attn, self.ffn)):
            h = sn(q)
            q = q + sa(h, h, h, need_weights=False)[0]
            if str(i) in self.cross_attn:
                h = self.cross_norm[str(i)](q)
                q = q + self.cross_attn[str(i)](h, kv, kv, need_weights=False)[0]
            q = q + ffn(q)
        return self.out(q)  # [B,Q,D] -> [B,Q,H]


def _square_side(n: int, what: str) -> int:
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"connector 'cross_attn': {what} must be a square number, got {n}")
    return side


class CrossAttnCompressor(Connector):
    """Qwen-VL's position-aware vision-language adapter: one cross-attention layer from Q learned queries
    (256 by default) to the patch features, with 2-D sin-cos positions added to queries and keys."""

    name = "cross_attn"
    default_queries = 256

    def __init__(self, cfg: ConnectorConfig, in_dim: int, out_dim: int):
        super().__init__(cfg, in_dim, out_dim)
        d = self.width
        if d % 4:
            raise ValueError(f"connector 'cross_attn': width {d} must be divisible by 4 (2-D positions)")
        _square_side(self.queries, "num_queries")
        self.queries_emb = nn.Parameter(torch.randn(self.queries, d) * 0.02)  # [Q,D]
        self.kv_proj = nn.Linear(in_dim, d)
        self.norm_q, self.norm_kv = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, _heads(d, cfg.num_heads), batch_first=True)
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        b, p, _ = x.shape
        side = _square_side(p, "the number of patches")
        kv = self.norm_kv(self.kv_proj(x))  # [B,P,E] -> [B,P,D]
        key_pos = sincos_2d(side, side, self.width).to(kv)  # [P,D] on the patch grid
        # Queries sit on their own side x side grid scaled onto the patch grid so positions are comparable.
        q = self.norm_q(self.queries_emb).unsqueeze(0).expand(b, -1, -1)  # [B,Q,D]
        q_side = math.isqrt(self.queries)
        q_pos = sincos_2d(q_side, q_side, self.width, scale=side / q_side).to(kv)  # [Q,D]
        out = self.attn(q + q_pos, kv + key_pos, kv, need_weights=False)[0]  # [B,Q,D]
        return self.out(out)  # [B,Q,D] -> [B,Q,H]

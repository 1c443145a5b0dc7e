"""A transformer over the points of a noisy cloud (Point-E's denoiser), with conditioning tokens in front.

    PointTransformer(channels=3, width=128, depth=4, heads=4)
    eps = net(x_t, t, cond, cond_mask)   x_t [B,N,C] noisy points, t [B] timesteps (int or float),
                                         cond [B,L,W] conditioning tokens, cond_mask [B,L] True = real token
                                         point_cond [B,N,W] optional, added to point token i (e.g. the
                                         embedding of the initial point that noisy point i displaces)
                                         -> [B,N,C] (the predicted noise, or x0, as the caller trains it)

The sequence is [timestep token][L conditioning tokens][N point tokens] (the timestep embedding is also
added to every point token), processed by a bidirectional pre-norm transformer encoder; the outputs at the
point positions are projected back to C channels. Points carry no positional encoding, so the network is
permutation-equivariant in the points: permuting x_t permutes the output the same way (a test checks it).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of timesteps t [B] -> [B,dim] (as in DDPM / Point-E)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # [B,half]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return emb if dim % 2 == 0 else torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)


class PointTransformer(nn.Module):
    """Denoiser: noisy points [B,N,C] + timestep [B] + conditioning tokens [B,L,W] -> [B,N,C]."""

    def __init__(self, channels: int, width: int = 128, depth: int = 4, heads: int = 4) -> None:
        super().__init__()
        if channels < 3 or width <= 0 or depth <= 0 or heads <= 0 or width % heads:
            raise ValueError(
                f"PointTransformer: need channels >= 3, width % heads == 0, depth > 0; got "
                f"channels={channels} width={width} depth={depth} heads={heads}"
            )
        self.channels, self.width = channels, width
        self.input = nn.Linear(channels, width)
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        layer = nn.TransformerEncoderLayer(
            width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.output = nn.Linear(width, channels)
        nn.init.zeros_(self.output.weight)  # start by predicting zeros (stable early training)
        nn.init.zeros_(self.output.bias)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor | None = None,
        cond_mask: torch.Tensor | None = None,
        point_cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, n, c = x.shape
        if c != self.channels or t.shape != (b,):
            raise ValueError(
                f"PointTransformer: expected x [B,N,{self.channels}] and t [B]; "
                f"got {tuple(x.shape)}, {tuple(t.shape)}"
            )
        tok_t = self.time(timestep_embedding(t, self.width)).unsqueeze(1)  # [B,1,W]
        parts = [tok_t]
        masks = [torch.ones(b, 1, dtype=torch.bool, device=x.device)]
        if cond is not None:
            if cond.ndim != 3 or cond.shape[0] != b or cond.shape[2] != self.width:
                raise ValueError(
                    f"PointTransformer: cond must be [B={b},L,{self.width}], got {tuple(cond.shape)}"
                )
            parts.append(cond)
            m = (
                cond_mask
                if cond_mask is not None
                else torch.ones(cond.shape[:2], dtype=torch.bool, device=x.device)
            )
            masks.append(m.to(torch.bool))
        pts = self.input(x) + tok_t  # [B,N,W]; every point also sees the noise level directly
        if point_cond is not None:
            if point_cond.shape != (b, n, self.width):
                raise ValueError(
                    f"PointTransformer: point_cond must be [B={b},N={n},{self.width}], got "
                    f"{tuple(point_cond.shape)}"
                )
            pts = pts + point_cond
        parts.append(pts)
        masks.append(torch.ones(b, n, dtype=torch.bool, device=x.device))
        h = torch.cat(parts, dim=1)  # [B,1+L+N,W]
        pad = ~torch.cat(masks, dim=1)  # [B,1+L+N] True = ignore
        h = self.blocks(h, src_key_padding_mask=pad if bool(pad.any()) else None)
        return self.output(self.norm(h[:, -n:]))  # [B,N,W] -> [B,N,C]

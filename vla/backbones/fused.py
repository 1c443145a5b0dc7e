"""Fused vision encoder: per-patch channel concatenation of two encoders (OpenVLA's DINOv2 + SigLIP).

Prismatic/OpenVLA (Karamcheti et al. 2024; Kim et al. 2024) run DINOv2 and SigLIP on the same image and
concatenate their patch features, so each visual token carries both geometric (DINOv2) and semantic
(SigLIP) features: [B,P,E1] ++ [B,P,E2] -> [B,P,E1+E2]. Both parts must give the same patch grid at the
configured image size (ViT-L/14 and So400m/14 at 224 px -> 256 patches each).

Each part normalises differently, so the fused transform only resizes and scales to [0,1]; the encoder
applies each part's mean/std internally (fixed buffers), keeping the [B,3,H,W] interface of every encoder.

    cfg = VisionConfig(name="fused", image_size=224, parts=[{"name": "dinov2", ...}, {"name": "siglip", ...}])
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from vla.backbones.config import VisionConfig, vision_config_from_dict
from vla.backbones.transforms import IDENTITY_MEAN, IDENTITY_STD, ImageTransform
from vla.backbones.vision import VisionEncoder, build_vision_encoder


class FusedEncoder(VisionEncoder):
    """Concatenate the patch features of `cfg.parts` (two or more encoders with equal patch grids)."""

    name = "fused"

    def __init__(self, cfg: VisionConfig):
        if len(cfg.parts) < 2:
            raise ValueError(f"vision encoder 'fused': needs at least 2 parts, got {len(cfg.parts)}")
        parts_cfg = []
        for i, d in enumerate(cfg.parts):
            part = vision_config_from_dict(dict(d), where=f"vision.parts[{i}]")
            if part.name == "fused":
                raise ValueError(f"vision.parts[{i}]: a fused encoder cannot nest another fused encoder")
            parts_cfg.append(dataclasses.replace(part, image_size=cfg.image_size))
        parts = [build_vision_encoder(p) for p in parts_cfg]
        grids = {p.name: p.grid(cfg.image_size) for p in parts}
        if len(set(grids.values())) != 1:
            raise ValueError(
                f"vision encoder 'fused': parts give different patch grids at {cfg.image_size} px: {grids}"
            )
        transform = ImageTransform(cfg.image_size, IDENTITY_MEAN, IDENTITY_STD, parts[0].transform.resample)
        super().__init__(cfg, sum(p.embed_dim for p in parts), parts[0].patch_size, transform)
        self.parts = nn.ModuleList(parts)
        for i, p in enumerate(parts):
            self.register_buffer(
                f"mean{i}", torch.tensor(p.transform.mean).view(1, 3, 1, 1), persistent=False
            )
            self.register_buffer(f"std{i}", torch.tensor(p.transform.std).view(1, 3, 1, 1), persistent=False)

    def grid(self, image_size: int | tuple[int, int] | None = None) -> tuple[int, int]:
        grids = {p.grid(self.image_size if image_size is None else image_size) for p in self.parts}
        if len(grids) != 1:
            raise ValueError(f"vision encoder 'fused': parts disagree on the patch grid ({grids})")
        return grids.pop()

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        feats = []
        for i, part in enumerate(self.parts):
            x = (images - getattr(self, f"mean{i}")) / getattr(self, f"std{i}")  # [B,3,H,W] part-normalised
            feats.append(part(x))  # [B,P,E_i]
        return torch.cat(feats, dim=-1)  # [B,P,sum E_i]

    def resolved_config(self) -> VisionConfig:
        parts = [dataclasses.asdict(p.resolved_config()) for p in self.parts]
        return VisionConfig(name="fused", image_size=self.image_size, parts=parts)

"""Image transforms of the vision encoders: resize + rescale + mean/std, serialisable to JSON.

Each encoder owns one `ImageTransform`; the processor saves `transform.to_dict()` in `processor.json` so
training, evaluation and deployment preprocess identically. Input: uint8 images [H,W,3] or [B,H,W,3]
(numpy or torch, the `images/<camera>` layout of vla.core.types) or float tensors [B,3,H,W] already in [0,1].
Output: float32 [B,3,S,S] normalised, S = `size`.

    t = ImageTransform(size=224, mean=SIGLIP_MEAN, std=SIGLIP_STD)
    pixels = t(obs["images/front"])                 # [1,3,224,224]
    t2 = ImageTransform.from_dict(json.loads(json.dumps(t.to_dict())))
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# Standard normalisation constants of the encoder families (from their published preprocessors).
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IDENTITY_MEAN = (0.0, 0.0, 0.0)
IDENTITY_STD = (1.0, 1.0, 1.0)

_MODES = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class ImageTransform:
    """Resize to `size` x `size` (`resample` interpolation), scale to [0,1], then (x - mean) / std."""

    size: int
    mean: tuple[float, float, float] = IDENTITY_MEAN
    std: tuple[float, float, float] = IDENTITY_STD
    resample: str = "bicubic"

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError(f"ImageTransform: size must be positive, got {self.size}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"ImageTransform: mean/std need 3 values, got {self.mean} / {self.std}")
        if self.resample not in _MODES:
            raise ValueError(f"ImageTransform: resample must be one of {_MODES}, got {self.resample!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageTransform:
        missing = {"size", "mean", "std"} - set(d)
        if missing:
            raise ValueError(f"image transform: missing keys {sorted(missing)} in {d}")
        return cls(
            size=int(d["size"]),
            mean=tuple(float(x) for x in d["mean"]),
            std=tuple(float(x) for x in d["std"]),
            resample=str(d.get("resample", "bicubic")),
        )

    def __call__(self, images: Any) -> torch.Tensor:
        x = to_float_chw(images)  # [B,3,H,W] in [0,1]
        if x.shape[-2:] != (self.size, self.size):
            kw = {} if self.resample == "nearest" else {"align_corners": False, "antialias": True}
            x = F.interpolate(x, size=(self.size, self.size), mode=self.resample, **kw).clamp(0.0, 1.0)
        mean = torch.tensor(self.mean, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(1, 3, 1, 1)
        return x.sub_(mean).div_(std)  # x is this call's own tensor: in place, the values of (x - m) / s


def to_float_chw(images: Any) -> torch.Tensor:
    """uint8 [H,W,3] / [B,H,W,3] or float [B,3,H,W] in [0,1] -> float32 [B,3,H,W] in [0,1] (a new tensor)."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.dtype == torch.uint8:
        if x.ndim == 3:
            x = x.unsqueeze(0)  # [H,W,3] -> [1,H,W,3]
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"uint8 images: expected shape [H,W,3] or [B,H,W,3], got {tuple(x.shape)}")
        # [B,H,W,3] -> [B,3,H,W], made contiguous while still 1 byte per value (4x faster downstream)
        return x.permute(0, 3, 1, 2).contiguous().to(torch.float32).div_(255.0)
    if not torch.is_floating_point(x):
        raise ValueError(f"images: expected uint8 [B,H,W,3] or float [B,3,H,W], got dtype {x.dtype}")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"float images: expected shape [B,3,H,W], got {tuple(x.shape)}")
    return x.to(torch.float32).clone()

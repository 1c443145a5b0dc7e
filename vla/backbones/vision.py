"""Vision encoders behind one interface: images [B,3,H,W] (already transformed) -> patch features [B,P,E].

Every encoder exposes `embed_dim` (E), `patch_size`, `image_size`, `num_patches(image_size)` (P),
`grid(image_size)` (h, w with P = h * w, row-major), its `transform` (an ImageTransform) and
`resolved_config()` (a VisionConfig that rebuilds the same architecture without the pretrained dir, so a
checkpoint is self-contained). Named in the VISION_ENCODERS table (name -> "module:class", imported on
first use):

    siglip              Hugging Face SiglipVisionModel (no CLS; all patch tokens)
    clip                Hugging Face CLIPVisionModel (CLS dropped)
    dinov2              Hugging Face Dinov2Model (CLS dropped)
    vit                 Hugging Face ViTModel (CLS dropped)
    conv                a small convolutional encoder for CPU (fixed 2-D sin-cos positions)
    efficientnet_lite0  EfficientNet-Lite0 cut at stride 8, 16 or 32; ImageNet weights offline from
                        `package:efficientnet_lite0` (vla/backbones/efficientnet.py)
    fused               per-patch concatenation of two encoders (vla/backbones/fused.py)

HF encoders are built from `VisionConfig.hf` (random init) or loaded from a local pretrained directory;
position embeddings are interpolated when the image size differs from the configured/pretrained one.
"""

from __future__ import annotations

import abc
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vla.backbones.config import VisionConfig
from vla.backbones.transforms import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SIGLIP_MEAN,
    SIGLIP_STD,
    ImageTransform,
)
from vla.core.io import read_json
from vla.core.registry import Registry

VISION_ENCODERS: Registry[type[VisionEncoder]] = Registry(
    "vision encoder",
    {
        "siglip": "vla.backbones.vision:SiglipEncoder",
        "clip": "vla.backbones.vision:ClipEncoder",
        "dinov2": "vla.backbones.vision:Dinov2Encoder",
        "vit": "vla.backbones.vision:VitEncoder",
        "conv": "vla.backbones.vision:ConvEncoder",
        "efficientnet_lite0": "vla.backbones.efficientnet:EfficientNetLiteEncoder",
        "fused": "vla.backbones.fused:FusedEncoder",
    },
)


def list_vision_encoders() -> list[str]:
    """Every vision encoder name `VisionConfig.name` takes (built-ins and registered plugins)."""
    return VISION_ENCODERS.names()


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def check_pretrained_dir(path: str | Path, what: str) -> Path:
    """A local Hugging Face directory must hold config.json and one weights file; else a clear error."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: pretrained directory not found: {path}")
    missing = [] if (path / "config.json").is_file() else ["config.json"]
    if not any((path / w).is_file() for w in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if missing:
        raise FileNotFoundError(f"{what}: pretrained directory {path} is missing {', '.join(missing)}")
    return path


class VisionEncoder(nn.Module, abc.ABC):
    """Base class: input checks, patch grid arithmetic, transform; subclasses implement `encode`."""

    name: str = ""
    exact_patches: bool = False  # True: H and W must be multiples of patch_size

    def __init__(self, cfg: VisionConfig, embed_dim: int, patch_size: int, transform: ImageTransform):
        super().__init__()
        self.cfg = cfg
        self.embed_dim = int(embed_dim)
        self.patch_size = int(patch_size)
        self.image_size = int(cfg.image_size)
        self.transform = transform

    def grid(self, image_size: int | tuple[int, int] | None = None) -> tuple[int, int]:
        """Patch grid (h, w) for an image size. ViT patch embeddings floor (SigLIP So400m/14 at 384 px:
        27 x 27, the last 6 pixels unused); encoders with `exact_patches` need exact multiples."""
        h, w = _hw(self.image_size if image_size is None else image_size)
        p = self.patch_size
        if h < p or w < p or (self.exact_patches and (h % p or w % p)):
            need = f"multiples of {p}" if self.exact_patches else f"at least {p}"
            raise ValueError(
                f"vision encoder {self.name!r}: cannot take images of {h}x{w} with patch size {p}; "
                f"expected images [B,3,H,W] with H and W {need}"
            )
        return h // p, w // p

    def num_patches(self, image_size: int | tuple[int, int] | None = None) -> int:
        h, w = self.grid(image_size)
        return h * w

    def check_images(self, images: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(
                f"vision encoder {self.name!r}: expected images [B,3,H,W] (transformed by its "
                f"ImageTransform), got {shape}"
            )
        if not torch.is_floating_point(images):
            raise ValueError(
                f"vision encoder {self.name!r}: expected float images [B,3,H,W], got dtype {images.dtype} "
                "(apply encoder.transform to uint8 images first)"
            )
        self.grid(tuple(images.shape[-2:]))

    film_dim: int = 0  # > 0: the encoder takes a conditioning vector [B, film_dim] (FiLM)

    def forward(self, images: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """images [B,3,H,W] float (and cond [B,film_dim] for FiLM encoders) -> [B,P,E]."""
        self.check_images(images)
        if self.film_dim:
            if cond is None or cond.shape != (images.shape[0], self.film_dim):
                got = None if cond is None else tuple(cond.shape)
                raise ValueError(
                    f"vision encoder {self.name!r}: FiLM needs cond [B,{self.film_dim}] for "
                    f"B={images.shape[0]}, got {got}"
                )
            return self.encode(images, cond)
        if cond is not None:
            raise ValueError(f"vision encoder {self.name!r} takes no conditioning (film_dim=0)")
        return self.encode(images)

    @abc.abstractmethod
    def encode(self, images: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Checked images [B,3,H,W] (cond [B,film_dim] where film_dim > 0) -> patch features [B,P,E]."""

    @abc.abstractmethod
    def resolved_config(self) -> VisionConfig:
        """A VisionConfig that rebuilds this architecture from scratch (no pretrained path)."""


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def build_vision_encoder(cfg: VisionConfig) -> VisionEncoder:
    return VISION_ENCODERS.get(cfg.name)(cfg)


class HFVisionEncoder(VisionEncoder):
    """Shared logic of the Hugging Face encoders; subclasses name the config/model classes."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    num_prefix_tokens = 1  # CLS tokens dropped from the output
    config_defaults: dict[str, Any] = {}

    def __init__(self, cfg: VisionConfig):
        config_cls, model_cls = self.hf_classes()
        mean, std = self.mean, self.std
        if cfg.pretrained:
            path = check_pretrained_dir(cfg.pretrained, f"vision encoder {self.name!r}")
            model = model_cls.from_pretrained(str(path), **self.model_kwargs(), **cfg.hf)
            pre = path / "preprocessor_config.json"
            if pre.is_file():
                p = read_json(pre, "preprocessor config")
                mean = tuple(p.get("image_mean", mean))
                std = tuple(p.get("image_std", std))
        else:
            kwargs = {"image_size": cfg.image_size, **self.config_defaults, **cfg.hf}
            model = model_cls(config_cls(**kwargs), **self.model_kwargs())
        hf_cfg = model.config
        super().__init__(
            cfg, hf_cfg.hidden_size, hf_cfg.patch_size, ImageTransform(cfg.image_size, mean, std)
        )
        self.model = model
        self.native_size = int(hf_cfg.image_size)
        n_layers = hf_cfg.num_hidden_layers
        if not -n_layers - 1 <= cfg.feature_layer <= n_layers:
            raise ValueError(
                f"vision encoder {self.name!r}: feature_layer {cfg.feature_layer} out of range for "
                f"{n_layers} layers"
            )

    @classmethod
    @abc.abstractmethod
    def hf_classes(cls) -> tuple[type, type]:
        """(config class, model class) from transformers."""

    def model_kwargs(self) -> dict[str, Any]:
        return {}

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        interpolate = tuple(images.shape[-2:]) != (self.native_size, self.native_size)
        kwargs: dict[str, Any] = {"pixel_values": images}
        if self.name != "dinov2":  # DINOv2 always interpolates its position embeddings
            kwargs["interpolate_pos_encoding"] = interpolate
        if self.cfg.feature_layer == -1:
            feats = self.model(**kwargs).last_hidden_state  # [B,prefix+P,E]
        else:
            feats = self.model(**kwargs, output_hidden_states=True).hidden_states[self.cfg.feature_layer]
        return feats[:, self.num_prefix_tokens :]  # [B,prefix+P,E] -> [B,P,E]

    def resolved_config(self) -> VisionConfig:
        hf = self.model.config.to_diff_dict()
        for k in ("transformers_version", "architectures", "model_type", "_name_or_path", "dtype"):
            hf.pop(k, None)
        hf["image_size"] = self.native_size
        return VisionConfig(
            name=self.name,
            image_size=self.image_size,
            pretrained=None,
            hf=hf,
            feature_layer=self.cfg.feature_layer,
        )


class SiglipEncoder(HFVisionEncoder):
    """SigLIP vision tower (Zhai et al. 2023); the MAP pooling head is disabled: patch tokens only."""

    name = "siglip"
    mean, std = SIGLIP_MEAN, SIGLIP_STD
    num_prefix_tokens = 0
    config_defaults = {"vision_use_head": False}

    @classmethod
    def hf_classes(cls) -> tuple[type, type]:
        from transformers import SiglipVisionConfig, SiglipVisionModel

        return SiglipVisionConfig, SiglipVisionModel


class ClipEncoder(HFVisionEncoder):
    """CLIP ViT vision tower (Radford et al. 2021); LLaVA uses feature_layer=-2."""

    name = "clip"
    mean, std = CLIP_MEAN, CLIP_STD

    @classmethod
    def hf_classes(cls) -> tuple[type, type]:
        from transformers import CLIPVisionConfig, CLIPVisionModel

        return CLIPVisionConfig, CLIPVisionModel


class Dinov2Encoder(HFVisionEncoder):
    """DINOv2 ViT (Oquab et al. 2023), ImageNet normalisation."""

    name = "dinov2"

    @classmethod
    def hf_classes(cls) -> tuple[type, type]:
        from transformers import Dinov2Config, Dinov2Model

        return Dinov2Config, Dinov2Model


class VitEncoder(HFVisionEncoder):
    """Plain ViT (Dosovitskiy et al. 2021), pooling layer removed."""

    name = "vit"
    mean, std = SIGLIP_MEAN, SIGLIP_STD

    @classmethod
    def hf_classes(cls) -> tuple[type, type]:
        from transformers import ViTConfig, ViTModel

        return ViTConfig, ViTModel

    def model_kwargs(self) -> dict[str, Any]:
        return {"add_pooling_layer": False}


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """images [B,C,H,W] -> [B,C,H,W], each shifted by its own random (dy, dx) in [-pad, pad] pixels,
    edges replicated. Integer shifts via one batched gather over the flattened padded image."""
    b, c, h, w = images.shape
    padded = nn.functional.pad(images, (pad, pad, pad, pad), mode="replicate")  # [B,C,H+2p,W+2p]
    off = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator, device=images.device)  # [B,2]
    rows = off[:, :1] + torch.arange(h, device=images.device)  # [B,H]
    cols = off[:, 1:] + torch.arange(w, device=images.device)  # [B,W]
    flat = (rows[:, :, None] * (w + 2 * pad) + cols[:, None, :]).flatten(1)  # [B,H*W] into (H+2p)*(W+2p)
    out = padded.flatten(2).gather(2, flat[:, None, :].expand(b, c, h * w))  # [B,C,H*W]
    return out.view(b, c, h, w)


def spatial_softmax(feats: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected positions and pooled features of K softmax maps.

    feats [B,C,h,w], logits [B,K,h,w] -> xy [B,K,2] (x right, y down, both in [-1, 1] from the first to
    the last row/column centre) and pooled [B,K,C] (the features averaged under each map).
    """
    b, c, h, w = feats.shape
    attn = logits.flatten(2).softmax(-1)  # [B,K,h*w]
    ys = torch.linspace(-1.0, 1.0, h, dtype=feats.dtype, device=feats.device)
    xs = torch.linspace(-1.0, 1.0, w, dtype=feats.dtype, device=feats.device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")  # [h,w] each
    coords = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=-1)  # [h*w,2]
    xy = attn @ coords  # [B,K,h*w] @ [h*w,2] -> [B,K,2]
    pooled = attn @ feats.flatten(2).transpose(1, 2)  # [B,K,h*w] @ [B,h*w,C] -> [B,K,C]
    return xy, pooled


def sincos_2d(h: int, w: int, dim: int, scale: float = 1.0) -> torch.Tensor:
    """Fixed 2-D sin-cos position table [h*w, dim] (half the channels for rows, half for columns);
    grid coordinates are multiplied by `scale` (to lay a coarse grid onto a finer one)."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos positions need dim divisible by 4, got {dim}")
    quarter = dim // 4
    freq = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter))  # [dim/4]
    rows = torch.arange(h, dtype=torch.float32) * scale
    cols = torch.arange(w, dtype=torch.float32) * scale
    ys, xs = torch.meshgrid(rows, cols, indexing="ij")
    ang_y = ys.reshape(-1, 1) * freq  # [h*w, dim/4]
    ang_x = xs.reshape(-1, 1) * freq  # [h*w, dim/4]
    return torch.cat([ang_y.sin(), ang_y.cos(), ang_x.sin(), ang_x.cos()], dim=1)  # [h*w, dim]


class ConvEncoder(VisionEncoder):
    """A small CNN for CPU: log2(patch_size) stride-2 conv blocks, 1x1 to E, plus fixed 2-D positions.

    `hf` keys: hidden_size (E, default 64), patch_size (total stride, a power of two, default 8),
    channels (first block width, doubled per block up to E, default 16), keypoints (K, default 0),
    keypoint_stride (default 4), random_shift (default 0) and patch_tokens (default true).

    `film_dim` F > 0 conditions every conv block on a vector [B, F] (FiLM, Perez et al. 2018, as in RT-1):
    x <- x * (1 + gamma) + beta with (gamma, beta) linear in the vector, zero-initialised so training
    starts from the unconditioned encoder. The VLM passes the mean embedding of the prompt (the
    instruction), so the feature maps and keypoints become "where is the thing the instruction names".

    `random_shift` s > 0 augments in training mode only: each image is padded by s pixels (edge
    replicated) and cropped back at a random offset, DrQ's shift augmentation (Kostrikov et al. 2020)
    that diffusion policy and robomimic use against overfitting a few hundred demonstrations.

    With K > 0 the encoder appends K keypoint tokens to its h*w patch tokens (P = h*w + K): a spatial
    softmax (Levine et al. 2016, robomimic) over the feature map at `keypoint_stride` gives, per keypoint,
    its expected image position (x, y) in [-1, 1] and the softmax-pooled feature there; a linear layer
    maps [feature, x, y] to E and a learned embedding says which keypoint it is. The positions are
    sub-pixel and explicit, which is what fine end-effector control needs; the patch tokens carry context.
    `patch_tokens: false` keeps the keypoint tokens alone (P = K): the blocks past `keypoint_stride` and
    the patch projection are not built, so the encoder and the LM after it (fewer tokens) cost less per
    image; `patch_size` then only fixes the image sizes it accepts (multiples of it).

    `stem_stride` s (2, 4 or 8, <= keypoint_stride; default 2) makes the first block an s x s convolution
    of stride s (a patchify stem, as ConvNeXt's) in place of the first log2(s) stride-2 blocks: no
    feature maps above stride s, whose normalisation, GELU and FiLM are most of the encoder's elementwise
    work on a CPU.

    `trunk: efficientnet_lite0` with `trunk_stride` s (2, 4 or 8, <= keypoint_stride) replaces the first
    log2(s) blocks by EfficientNet-Lite0's first layers, frozen (weights from `vision.pretrained`, e.g.
    `package:efficientnet_lite0`; BatchNorm on its stored statistics; images then take its transform),
    followed by one trainable stride-1 block at stride s, so FiLM conditions every map after the trunk and
    the keypoints too. The trunk runs without autograd; ImageNet features for the shapes and colours that
    64-px features learned from a few hundred demonstrations confuse.
    """

    name = "conv"
    exact_patches = True

    def __init__(self, cfg: VisionConfig):
        self.trunk_name = cfg.hf.get("trunk") or None
        if cfg.pretrained and not self.trunk_name:
            raise ValueError(
                "vision encoder 'conv' has no pretrained weights (only its hf.trunk has); set "
                "vision.pretrained=null"
            )
        known = {
            "hidden_size",
            "patch_size",
            "channels",
            "keypoints",
            "keypoint_stride",
            "random_shift",
            "film_dim",
            "patch_tokens",
            "trunk",
            "trunk_stride",
            "stem_stride",
        }
        unknown = set(cfg.hf) - known
        if unknown:
            raise ValueError(f"vision encoder 'conv': unknown hf keys {sorted(unknown)}")
        dim = int(cfg.hf.get("hidden_size", 64))
        patch = int(cfg.hf.get("patch_size", 8))
        ch = int(cfg.hf.get("channels", 16))
        self.keypoints = int(cfg.hf.get("keypoints", 0))
        kp_stride = int(cfg.hf.get("keypoint_stride", 4))
        self.random_shift = int(cfg.hf.get("random_shift", 0))
        self.film_dim = int(cfg.hf.get("film_dim", 0))
        self.patch_tokens = bool(cfg.hf.get("patch_tokens", True))
        if self.film_dim < 0:
            raise ValueError(f"vision encoder 'conv': film_dim must be >= 0, got {self.film_dim}")
        if self.random_shift < 0:
            raise ValueError(f"vision encoder 'conv': random_shift must be >= 0, got {self.random_shift}")
        if patch < 2 or patch & (patch - 1):
            raise ValueError(f"vision encoder 'conv': patch_size must be a power of two >= 2, got {patch}")
        if self.keypoints < 0 or kp_stride < 2 or kp_stride & (kp_stride - 1) or kp_stride > patch:
            raise ValueError(
                f"vision encoder 'conv': keypoints must be >= 0 and keypoint_stride a power of two in "
                f"[2, patch_size={patch}], got {self.keypoints} and {kp_stride}"
            )
        if not self.patch_tokens and not self.keypoints:
            raise ValueError("vision encoder 'conv': patch_tokens=false needs keypoints > 0 (no tokens left)")
        self.trunk_stride = int(cfg.hf.get("trunk_stride", 4)) if self.trunk_name else 1
        self.stem_stride = int(cfg.hf.get("stem_stride", 2))
        if (
            self.stem_stride not in (2, 4, 8)
            or self.stem_stride > kp_stride
            or (self.trunk_name and self.stem_stride != 2)
        ):
            raise ValueError(
                f"vision encoder 'conv': hf.stem_stride must be 2, 4 or 8, <= keypoint_stride ({kp_stride}) "
                f"and 2 with a trunk, got {self.stem_stride}"
            )
        transform = ImageTransform(cfg.image_size, IMAGENET_MEAN, IMAGENET_STD)
        if self.trunk_name:
            if self.trunk_name != "efficientnet_lite0":
                raise ValueError(
                    f"vision encoder 'conv': hf.trunk must be efficientnet_lite0, got {self.trunk_name!r}"
                )
            if self.trunk_stride not in (2, 4, 8) or self.trunk_stride > kp_stride:
                raise ValueError(
                    f"vision encoder 'conv': hf.trunk_stride must be 2, 4 or 8 and <= keypoint_stride "
                    f"({kp_stride}), got {self.trunk_stride}"
                )
            # imported here: vla.backbones.efficientnet imports this module
            from vla.backbones.efficientnet import lite0_transform, lite0_trunk

            stem, trunk_blocks, c_trunk = lite0_trunk(cfg.pretrained, self.trunk_stride)
            trunk = nn.Sequential(stem, trunk_blocks).requires_grad_(False)
            transform = lite0_transform(cfg.image_size)
        super().__init__(cfg, dim, patch, transform)
        if self.trunk_name:
            self.trunk = trunk.eval()
            self.frozen_prefixes = ("trunk.",)  # kept frozen by the VLM's unfreeze (adapters.py)
        self.kp_stride = kp_stride
        self.kp_block = int(math.log2(kp_stride))  # stride-2 blocks (the trunk's included) before keypoints
        layers: list[nn.Module] = []  # one flat Sequential (checkpoint keys body.<3 * block + k>)
        c_in, kp_channels, self.kp_layer = 3, 0, 0
        # the first block ends at stride s (the trunk's or the stem's) with the width of the stride-2 block
        # it stands for: a stride-1 3x3 block on the trunk's map, an s x s patchify convolution, or (s = 2)
        # the plain 3x3 stride-2 block
        s = self.trunk_stride if self.trunk_name else self.stem_stride
        first = int(math.log2(s))  # >= 1: the stride-2 blocks the trunk or stem replaces
        if self.trunk_name:
            c_in = c_trunk
        ch = ch * 2 ** (first - 1)
        blocks = int(math.log2(patch)) if self.patch_tokens else self.kp_block
        for i in range(first - 1, blocks):
            kernel, stride, pad = (3, 2, 1)
            if i == first - 1 and self.trunk_name:
                kernel, stride, pad = (3, 1, 1)
            elif i == first - 1 and s > 2:
                kernel, stride, pad = (s, s, 0)
            c_out = min(ch, dim)
            layers += [nn.Conv2d(c_in, c_out, kernel, stride, pad), nn.GroupNorm(1, c_out), nn.GELU()]
            c_in, ch = c_out, ch * 2
            if i + 1 == self.kp_block:
                kp_channels, self.kp_layer = c_out, len(layers)  # the map after this block's activation
        self.body = nn.Sequential(*layers)
        self.block_channels = [m.out_channels for m in layers if isinstance(m, nn.Conv2d)]
        if self.film_dim:
            self.film = nn.Linear(self.film_dim, 2 * sum(self.block_channels))  # -> (gamma, beta) per block
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)
        if self.patch_tokens:
            self.proj = nn.Conv2d(c_in, dim, 1)
        self.norm = nn.LayerNorm(dim)
        if self.keypoints:
            self.kp_logits = nn.Conv2d(kp_channels, self.keypoints, 1)
            self.kp_proj = nn.Linear(kp_channels + 2, dim)
            self.kp_embed = nn.Parameter(torch.randn(self.keypoints, dim) * 0.02)

    def num_patches(self, image_size: int | tuple[int, int] | None = None) -> int:
        if not self.patch_tokens:
            self.grid(image_size)  # the size check
            return self.keypoints
        return super().num_patches(image_size) + self.keypoints

    def _keypoint_tokens(self, feats: torch.Tensor) -> torch.Tensor:
        """feats [B,C,h,w] -> keypoint tokens [B,K,E]: [pooled feature, x, y] projected, plus identity."""
        xy, pooled = spatial_softmax(feats, self.kp_logits(feats))  # [B,K,2], [B,K,C]
        return self.kp_proj(torch.cat([pooled, xy], dim=-1)) + self.kp_embed  # [B,K,E]

    def encode(self, images: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x, kp_feats = images, None
        if self.training and self.random_shift:
            x = random_shift(x, self.random_shift)
        # channels-last activations: oneDNN's small convolutions (and their backward) run 20-50% faster
        # in NHWC on CPU (docs/training.md); the weights and the values stay the same
        x = x.contiguous(memory_format=torch.channels_last)
        if self.trunk_name:
            with torch.no_grad():  # frozen: no graph through the trunk
                x = self.trunk(x)  # [B,C_trunk,H/s,W/s]
        films: list[torch.Tensor] = []
        if self.film_dim and cond is not None:
            # Standardise the condition first: a mean of freshly initialised LM embeddings is ~0.01 in
            # size, which would leave FiLM's gradients (and so its learning) near zero.
            c = nn.functional.layer_norm(cond.to(x.dtype), (self.film_dim,))  # [B,F]
            films = list(self.film(c).split([2 * ch for ch in self.block_channels], dim=1))
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i % 3 == 2 and films:  # after each block's activation: FiLM with [B,2C] -> gamma, beta [B,C]
                gamma, beta = films[i // 3].chunk(2, dim=1)
                x = torch.addcmul(beta[:, :, None, None], x, 1 + gamma[:, :, None, None])  # x(1+g)+b
            if i + 1 == self.kp_layer:
                kp_feats = x.contiguous()  # [B,C,H/kp_stride,W/kp_stride]
        if not self.patch_tokens:
            assert kp_feats is not None
            return self.norm(self._keypoint_tokens(kp_feats))  # [B,K,E]
        # back to NCHW for the 1x1 convolutions: their weight gradients then have the weights' strides,
        # which DDP's gradient buckets require
        x = self.proj(x.contiguous())  # [B,E,h,w]
        b, e, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)  # [B,E,h,w] -> [B,h*w,E]
        pos = sincos_2d(h, w, e).to(x.dtype)  # [h*w,E]
        tokens = x + pos
        if self.keypoints:
            assert kp_feats is not None
            tokens = torch.cat([tokens, self._keypoint_tokens(kp_feats)], dim=1)  # [B,h*w+K,E]
        return self.norm(tokens)

    def resolved_config(self) -> VisionConfig:
        hf = {"hidden_size": self.embed_dim, "patch_size": self.patch_size}
        hf["channels"] = int(self.cfg.hf.get("channels", 16))
        if self.keypoints:
            hf["keypoints"], hf["keypoint_stride"] = self.keypoints, self.kp_stride
        if self.random_shift:
            hf["random_shift"] = self.random_shift
        if self.film_dim:
            hf["film_dim"] = self.film_dim
        if not self.patch_tokens:
            hf["patch_tokens"] = False
        if self.stem_stride != 2:
            hf["stem_stride"] = self.stem_stride
        if self.trunk_name:  # the trunk's weights travel in the checkpoint's state dict
            hf["trunk"], hf["trunk_stride"] = self.trunk_name, self.trunk_stride
        return VisionConfig(name="conv", image_size=self.image_size, hf=hf)

    def train(self, mode: bool = True) -> ConvEncoder:
        """The trunk's BatchNorm layers always normalise with their stored statistics (it is frozen)."""
        super().train(mode)
        if self.trunk_name:
            self.trunk.eval()
        return self

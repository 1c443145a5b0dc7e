"""Named component sizes: tiny ones for CPU tests and demos, realistic ones matching published models.

    tiny_vision_config("siglip")           # 2-layer, 32-wide SigLIP at 32 px, patch 8 -> 16 patches
    tiny_vlm_config("dinov2", "qformer")   # a whole VLM small enough for a unit test
    REALISTIC_VISION["siglip"]             # SigLIP-So400m/14 @ 384 sizes (random init unless pretrained)

Realistic sizes are the published architectures' hyper-parameters (no weights): SigLIP So400m/14-384,
CLIP ViT-L/14-336, DINOv2 ViT-L/14, ViT-B/16, and Qwen2-0.5B for the LM.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vla.backbones.config import ConnectorConfig, LMConfig, VisionConfig, VLMConfig

TINY_IMAGE = 32
_TINY_VIT: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "patch_size": 8,
}
TINY_LLAMA: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "tie_word_embeddings": True,
}
TINY_LM: dict[str, dict[str, Any]] = {
    "llama": TINY_LLAMA,
    "qwen2": {**TINY_LLAMA},
    "gpt2": {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 512},
}
TINY_CONNECTOR_QUERIES = {"perceiver": 8, "qformer": 8, "cross_attn": 4}

VISION_NAMES = ("siglip", "clip", "dinov2", "vit", "conv", "efficientnet_lite0", "fused")
CONNECTOR_NAMES = ("linear", "mlp2x_gelu", "token_merge", "perceiver", "qformer", "cross_attn")


def tiny_vision_config(name: str, image_size: int = TINY_IMAGE) -> VisionConfig:
    """A CPU-test-sized VisionConfig for any registered encoder name."""
    if name == "conv":
        return VisionConfig(name="conv", image_size=image_size, hf={"hidden_size": 32, "patch_size": 8})
    if name == "efficientnet_lite0":  # random init; stride 8 -> 4 x 4 patches at 32 px, projected to 32
        return VisionConfig(name=name, image_size=image_size, hf={"stride": 8, "hidden_size": 32})
    if name == "fused":
        parts = [dataclasses.asdict(tiny_vision_config(p, image_size)) for p in ("dinov2", "siglip")]
        return VisionConfig(name="fused", image_size=image_size, parts=parts)
    if name not in VISION_NAMES:
        raise ValueError(f"no tiny preset for vision encoder {name!r}; expected one of {VISION_NAMES}")
    return VisionConfig(name=name, image_size=image_size, hf=dict(_TINY_VIT))


def tiny_connector_config(name: str) -> ConnectorConfig:
    return ConnectorConfig(name=name, num_queries=TINY_CONNECTOR_QUERIES.get(name, 0))


def tiny_vlm_config(
    vision: str = "conv", connector: str = "mlp2x_gelu", arch: str = "llama", **overrides: Any
) -> VLMConfig:
    """A whole VLM for unit tests: tiny encoder + connector + a 2-layer LM with the builtin tokenizer."""
    lm = LMConfig(arch=arch, hf=dict(TINY_LM[arch]), tokenizer="builtin:tiny")
    cfg = VLMConfig(vision=tiny_vision_config(vision), connector=tiny_connector_config(connector), lm=lm)
    return dataclasses.replace(cfg, **overrides)


REALISTIC_VISION: dict[str, VisionConfig] = {
    "siglip": VisionConfig(
        name="siglip",
        image_size=384,
        hf={
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "num_hidden_layers": 27,
            "num_attention_heads": 16,
            "patch_size": 14,
        },
    ),
    "clip": VisionConfig(
        name="clip",
        image_size=336,
        feature_layer=-2,
        hf={
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "patch_size": 14,
        },
    ),
    "dinov2": VisionConfig(
        name="dinov2",
        image_size=224,
        hf={
            "hidden_size": 1024,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "patch_size": 14,
            "image_size": 518,
            "layerscale_value": 1e-5,
        },
    ),
    "vit": VisionConfig(
        name="vit",
        image_size=224,
        hf={
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "patch_size": 16,
        },
    ),
    "conv": VisionConfig(
        name="conv", image_size=224, hf={"hidden_size": 256, "patch_size": 16, "channels": 32}
    ),
}
REALISTIC_VISION["fused"] = VisionConfig(
    name="fused",
    image_size=224,
    parts=[dataclasses.asdict(REALISTIC_VISION["dinov2"]), dataclasses.asdict(REALISTIC_VISION["siglip"])],
)
QWEN2_0P5B: dict[str, Any] = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}

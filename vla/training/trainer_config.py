"""The trainer's settings (vla.training.trainer): `TrainerConfig` (the hydra schema of `vla train`'s
`trainer.` section) with its freeze phases, the check of every setting before a run starts
(`check_settings`), and what a resume compares: `RESUME_SETTINGS` (`trainer_settings`, kept in
train_state.pt), the sections of a checkpoint's config.json as flat keys (`_comparable`), the
fingerprints of the episode stores that config names (`data_fingerprints`), and the one-line
`key old -> new` differences between the two (`resume_changes`, `data_changes`). The loop that uses them,
and raises or warns on a difference, is `Trainer` in vla.training.trainer, which re-exports these names.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vla.data.store import EpisodeStore
from vla.models.checkpoint import RESERVED_KEYS
from vla.training.distributed import STRATEGIES


@dataclass
class FreezePhase:
    """Until optimiser step `until` (exclusive; -1 = to the end) only `train` components get gradients."""

    until: int = -1
    train: list[str] = field(default_factory=list)


@dataclass
class TrainerConfig:
    """The trainer's options; also the hydra schema of `vla train`'s `trainer.` section, so every field is
    settable as `trainer.<field>=` (configs/train.yaml sets `out_dir` to the command's `out`)."""

    steps: int = 1000
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    precision: str = "auto"  # auto | fp32 | bf16
    ema_decay: float = 0.0  # 0 disables EMA
    seed: int = 0
    num_workers: int = 0
    log_every: int = 10
    val_every: int = 0  # 0: validate only at the end (if a val set is given)
    val_batches: int = 8
    save_every: int = 0  # 0: save only at the end
    keep_last: int = 2
    out_dir: str = "outputs/train"
    resume: bool = False
    resume_force: bool = False  # resume even though the store, model or optimiser settings changed
    strategy: str = "auto"  # auto | none | ddp | fsdp (under torchrun)
    device: str = "auto"
    freeze_schedule: list[FreezePhase] = field(default_factory=list)
    progress: bool = True

    def __post_init__(self) -> None:
        if len(self.betas) != 2:
            raise ValueError(f"trainer.betas: expected 2 values, got {list(self.betas)}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))  # a list from the command line


# The trainer settings a resumed run must share with its checkpoint (others may change on resume).
RESUME_SETTINGS = (
    "batch_size",
    "grad_accum",
    "lr",
    "weight_decay",
    "betas",
    "warmup_steps",
    "min_lr_ratio",
    "grad_clip",
    "precision",
    "ema_decay",
    "seed",
    "freeze_schedule",
)
# Keys of config.json's "train" section (vla train's config) that say where and how a run executes, not
# what it learns: a resumed run may change them.
_RUN_KEYS = ("out", "threads", "procs")


def _plain(value: Any) -> Any:
    """JSON-normalised (tuples -> lists, dataclasses -> dicts), as a checkpoint stores it."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value, default=str))


def trainer_settings(cfg: TrainerConfig) -> dict[str, Any]:
    """The RESUME_SETTINGS of `cfg`, JSON-normalised (what train_state.pt keeps as "trainer_config")."""
    return {k: _plain(getattr(cfg, k)) for k in RESUME_SETTINGS}


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint config.json (or the one this run would write) as flat keys to compare on resume: the
    "train" section's keys unprefixed (`data.path`, `trainer.lr`), the others prefixed by their section;
    run-placement keys and trainer options outside RESUME_SETTINGS left out; paths normalised."""
    flat: dict[str, Any] = {}
    for section, value in config.items():
        if section in RESERVED_KEYS and section != "model":
            continue
        if section == "train" and isinstance(value, Mapping):
            flat.update(_flatten({k: v for k, v in value.items() if k not in _RUN_KEYS}))
        elif isinstance(value, Mapping):
            flat.update(_flatten(value, f"{section}."))
        else:
            flat[section] = value
    out = {}
    for k, v in flat.items():
        if k.startswith("trainer.") and k.split(".")[1] not in RESUME_SETTINGS:
            continue
        if (k == "path" or k.endswith(".path")) and isinstance(v, str) and v:
            v = os.path.normpath(v)
        out[k] = v
    return out


def store_paths(config: Any) -> list[str]:
    """Every episode store a checkpoint config names: the values of its `path` keys (at any depth, in
    lists too: a mixture) that are store directories, normalised."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                if k == "path" and isinstance(v, str) and v and (Path(v) / "zarr.json").is_file():
                    found.add(os.path.normpath(v))
                else:
                    walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)

    walk(config)
    return sorted(found)


def data_fingerprints(config: Any) -> dict[str, dict[str, Any]]:
    """{store path: EpisodeStore.fingerprint()} for every store `config` names (unreadable ones left out:
    the command that opens them reports those)."""
    out = {}
    for path in store_paths(config):
        try:
            store = EpisodeStore.open(path)
        except (OSError, ValueError):
            continue
        out[path] = store.fingerprint()
    return out


def _show_data(fp: Any) -> str:
    if not isinstance(fp, Mapping):
        return _show(fp)
    return f"{fp.get('episodes')} episodes/{fp.get('frames')} frames/crc32 {fp.get('crc32')}"


def data_changes(saved: Any, current: Mapping[str, Any]) -> list[str]:
    """`data <store> old -> new` for every store both fingerprint sets name whose data differs (a store
    named on one side only is a changed path, which the settings comparison reports)."""
    if not isinstance(saved, Mapping):
        return []  # a checkpoint from before data fingerprints
    return [
        f"data {p} {_show_data(saved[p])} -> {_show_data(current[p])}"
        for p in sorted(set(saved) & set(current))
        if _plain(saved[p]) != _plain(current[p])
    ]


def _show(v: Any) -> str:
    text = json.dumps(v) if not isinstance(v, str) else v
    return text if len(text) <= 60 else text[:57] + "..."


def resume_changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """`key old -> new` for every setting that differs between two `_comparable` dicts. A key on one side
    only is a field the other version of the code did not have, and is no change, unless the other side
    holds it in another shape (`cotrain null -> {...}`: `cotrain` on one side, `cotrain.vqa...` on the
    other)."""
    out = []
    for k in sorted(set(saved) & set(current)):
        if _plain(saved[k]) != _plain(current[k]):
            out.append(f"{k} {_show(saved[k])} -> {_show(current[k])}")
    for one, other, fmt in ((saved, current, "{k} {v} -> (other settings)"),
                            (current, saved, "{k} (other settings) -> {v}")):  # fmt: skip
        for k in sorted(set(one) - set(other)):
            if any(o.startswith(k + ".") for o in other):
                out.append(fmt.format(k=k, v=_show(one[k])))
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_settings(c: TrainerConfig) -> None:
    """One ValueError line for a setting no run can use (NaN, negative, out of range, an unknown device
    or strategy), before anything starts; the optimiser, schedule and loops would otherwise fail later
    with a message of their own, or divide by zero."""
    if c.steps < 1 or c.batch_size < 1 or c.grad_accum < 1:
        raise ValueError("trainer: steps, batch_size and grad_accum must all be >= 1")
    ranges = {  # name -> (ok, what it must be)
        "lr": (_finite(c.lr) and c.lr >= 0, "a finite number >= 0"),
        "weight_decay": (_finite(c.weight_decay) and c.weight_decay >= 0, "a finite number >= 0"),
        "betas": (all(_finite(b) and 0 <= b < 1 for b in c.betas), "two numbers in [0, 1)"),
        "min_lr_ratio": (_finite(c.min_lr_ratio) and 0 <= c.min_lr_ratio <= 1, "in [0, 1]"),
        "grad_clip": (_finite(c.grad_clip) and c.grad_clip >= 0, "a finite number >= 0 (0: no clipping)"),
        "ema_decay": (_finite(c.ema_decay) and 0 <= c.ema_decay < 1, "in [0, 1) (0: no EMA)"),
        "warmup_steps": (c.warmup_steps >= 0, ">= 0"),
        "num_workers": (c.num_workers >= 0, ">= 0"),
        "log_every": (c.log_every >= 1, ">= 1"),
        "val_every": (c.val_every >= 0, ">= 0 (0: at the end)"),
        "val_batches": (c.val_batches >= 1, ">= 1"),
        "save_every": (c.save_every >= 0, ">= 0 (0: at the end)"),
        "keep_last": (c.keep_last >= 1, ">= 1"),
    }
    for name, (ok, what) in ranges.items():
        if not ok:
            value = list(c.betas) if name == "betas" else getattr(c, name)
            raise ValueError(f"trainer.{name} must be {what}, got {value}")
    if c.strategy not in STRATEGIES:
        raise ValueError(f"trainer.strategy: unknown {c.strategy!r}; expected one of {list(STRATEGIES)}")
    if c.device != "auto":
        try:
            torch.device(c.device)
        except (RuntimeError, ValueError, TypeError):
            raise ValueError(
                f"trainer.device: unknown device {c.device!r}; expected auto, cpu, cuda or cuda:N"
            ) from None

"""Hydra configuration: dataclass schemas in the ConfigStore, YAML presets in `configs/`, overrides.

Each command module declares its schema with `@register_config("<name>")` on a dataclass; importing the
module registers it (no initialisation step). A YAML preset `configs/<name>.yaml` lists
`defaults: [<name>_schema, ...groups..., _self_]`, so hydra validates the YAML against the dataclass.

    cfg = compose("collect", ["task=pick", "episodes=20"])   # DictConfig, typed by the schema
    save_resolved(cfg, run_dir)                               # run_dir/config.yaml, atomically

Command-line form (see `vla.cli`): `vla collect task=pick episodes=20`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from hydra import compose as _hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from vla.core.io import atomic_write_text

T = TypeVar("T")


def config_dir() -> Path:
    """Directory of the YAML presets: package data `vla/configs`, or the repo's `configs/`."""
    env = os.environ.get("VLA_CONFIG_DIR")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[1]  # the `vla` package
    for cand in (here / "configs", here.parent / "configs"):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(f"no configs directory found next to {here} (set VLA_CONFIG_DIR)")


def register_config(name: str, group: str | None = None) -> Callable[[type[T]], type[T]]:
    """Class decorator: store a dataclass schema in hydra's ConfigStore as `<name>_schema`."""

    def deco(cls: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"@register_config expects a dataclass, got {cls!r}")
        ConfigStore.instance().store(name=f"{name}_schema", node=cls, group=group)
        return cls

    return deco


def compose(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose `configs/<config_name>.yaml` with command-line style `key=value` overrides."""
    path = config_dir()
    if not (path / f"{config_name}.yaml").is_file():
        known = sorted(p.stem for p in path.glob("*.yaml"))
        raise ValueError(f"unknown config {config_name!r} in {path}; expected one of {known}")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(path), version_base=None):
        cfg = _hydra_compose(config_name=config_name, overrides=list(overrides))
    return cfg


def to_dataclass(cfg: DictConfig, cls: type[T]) -> T:
    """Turn a composed config into its schema dataclass (a plain, typed object for library code)."""
    obj = OmegaConf.to_object(cfg)
    if isinstance(obj, cls):
        return obj
    if isinstance(obj, dict):
        return cls(**obj)
    raise TypeError(f"cannot convert config to {cls.__name__}: got {type(obj).__name__}")


def to_yaml(cfg: Any) -> str:
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        cfg = OmegaConf.structured(cfg)
    return OmegaConf.to_yaml(cfg, resolve=True)


def save_resolved(cfg: Any, out_dir: str | os.PathLike, name: str = "config.yaml") -> Path:
    """Write the fully resolved config next to a run's outputs (atomically)."""
    return atomic_write_text(Path(out_dir) / name, to_yaml(cfg))


def split_positionals(argv: Sequence[str], names: Sequence[str]) -> list[str]:
    """Positionals to overrides: (['d/x', 'a=1'], ['path']) -> ['path=d/x', 'a=1']."""
    out: list[str] = []
    pos = [a for a in argv if "=" not in a]
    rest = [a for a in argv if "=" in a]
    if len(pos) > len(names):
        raise ValueError(f"unexpected arguments {pos[len(names) :]}; expected key=value overrides")
    out += [f"{n}={v}" for n, v in zip(names, pos)]
    return out + rest

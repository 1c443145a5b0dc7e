"""The `data` config group: which store a training run reads, its windows and its normalisation.

`DataConfig` (group `data`, presets `configs/data/*.yaml`) names the episode store, the episode filter
(task/success/split), the `WindowSpec` (n_obs, n_action, obs keys, image resize) and the normalisation mode
per key. A command's top-level YAML lists `- data: store` in its defaults and overrides fields with
`data.path=... data.n_action=8`; the helpers below build the dataset and the normaliser from it.

    ds = make_dataset(cfg.data)             # WindowDataset
    norm = make_normalizer(cfg.data)        # Normalizer from the store's cached statistics
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vla.core.config import register_config
from vla.core.normalizer import Normalizer
from vla.data.store import EpisodeStore
from vla.data.windows import WindowDataset, WindowSpec


@register_config("store", group="data")
@dataclass
class DataConfig:
    path: str = "outputs/demos/pick.zarr"
    n_obs: int = 1
    n_action: int = 1
    obs_keys: list[str] | None = None  # None: every feature except the action
    image_size: list[int] | None = None  # [H, W] resize in the loader workers
    task: str | None = None
    success: bool | None = None
    split: str | None = None
    normalization: dict[str, str] = field(default_factory=lambda: {"action": "q99", "state": "meanstd"})


def _get(cfg: Any, name: str) -> Any:
    return cfg[name] if isinstance(cfg, dict) else getattr(cfg, name)


def window_spec(cfg: Any) -> WindowSpec:
    """The WindowSpec a DataConfig (dataclass, DictConfig or dict) declares."""
    keys, size = _get(cfg, "obs_keys"), _get(cfg, "image_size")
    return WindowSpec(
        n_obs=int(_get(cfg, "n_obs")),
        n_action=int(_get(cfg, "n_action")),
        obs_keys=list(keys) if keys is not None else None,
        image_size=[int(s) for s in size] if size is not None else None,
    )


def make_dataset(cfg: Any) -> WindowDataset:
    return WindowDataset(
        _get(cfg, "path"),
        window_spec(cfg),
        task=_get(cfg, "task"),
        success=_get(cfg, "success"),
        split=_get(cfg, "split"),
    )


def make_normalizer(cfg: Any) -> Normalizer:
    """Normaliser over the whole store's statistics (computed once, cached in the store)."""
    return EpisodeStore.open(_get(cfg, "path")).normalizer(dict(_get(cfg, "normalization")))

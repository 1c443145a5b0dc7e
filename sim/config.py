"""Config schemas of the simulator: `env` and `task` hydra groups, and `make_env` from them.

`EnvConfig` (group `env`, presets `configs/env/*.yaml`) holds the constructor arguments of
"vla/Tabletop-v0" except the task; `TaskConfig` (group `task`, presets `configs/task/<name>.yaml`) names
the task, its split and its horizon. A command's top-level YAML lists `- env: tabletop` and
`- task: pick` in its defaults; `make_env(env_cfg, task_cfg)` builds the gymnasium env from them.
`env_kwargs` refuses a rendered image above `vla.core.limits.MAX_IMAGE_SIZE` px, and `check_env_resources`
checks a whole rollout run (env processes against cores and episodes, memory, disk) before a command
starts one (vla.core.limits).

    vla <command> env=tabletop_224 task=stack task.split=heldout env.cameras=[static]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from sim import ENV_ID
from sim.tasks import get_task
from vla.core.config import register_config
from vla.core.limits import RolloutFootprint, check_image_size, check_rollout_resources


@register_config("tabletop", group="env")
@dataclass
class EnvConfig:
    """Rendering and control options of the table-top env (see sim.env.TabletopEnv)."""

    cameras: list[str] = field(default_factory=lambda: ["static", "wrist"])
    image_size: int = 128
    depth: bool = True
    segmentation: bool = False
    # colours/<cam> uint8 [H,W]: which palette colour (sim.scene.PALETTE, 1-based; 0 none) each pixel shows
    colour_masks: bool = False
    action_space: str = "ee_delta"
    renderer: str = "tiny"
    robot_visuals: str = "simple"  # simple (collision meshes, fast) | full (textured meshes)
    # Goal-specified tasks only (sim.goal_tasks): the goal point cloud observation goal/points [N,3].
    goal_points: int = 1024
    goal_cameras: list[str] | None = None  # null: the observation cameras (static if there are none)
    goal_image_size: int = 224
    # Gaussian actuation noise (m; 5x in rad on yaw) added to each commanded EE delta before it runs; a
    # recorder stores the commanded action: `vla collect env.action_noise=0.01` records DART recovery data.
    action_noise: float = 0.0


@register_config("task", group="task")
@dataclass
class TaskConfig:
    """Which task, which split, and an optional horizon override (null = the task's default)."""

    name: str = "pick"
    split: str = "train"
    max_episode_steps: int | None = None


def _as_dict(cfg: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return dataclasses.asdict(cfg)
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(cfg):
            return dict(OmegaConf.to_container(cfg, resolve=True))
    except ImportError:  # pragma: no cover - omegaconf ships with hydra, a dependency
        pass
    return dict(cfg)


def env_kwargs(env_cfg: Any, task_cfg: Any) -> dict[str, Any]:
    """Keyword arguments for `gymnasium.make("vla/Tabletop-v0", ...)` from the two config groups."""
    e, t = _as_dict(env_cfg), _as_dict(task_cfg)
    known_e = {f.name for f in dataclasses.fields(EnvConfig)}
    known_t = {f.name for f in dataclasses.fields(TaskConfig)}
    for where, d, known in (("env", e, known_e), ("task", t, known_t)):
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{where} config: unknown keys {unknown}; expected a subset of {sorted(known)}")
    check_image_size("env.image_size", e.get("image_size", EnvConfig.image_size))
    check_image_size("env.goal_image_size", e.get("goal_image_size", EnvConfig.goal_image_size))
    kw = {**e, "cameras": tuple(e.get("cameras", ("static", "wrist")))}
    if kw.get("goal_cameras") is not None:
        kw["goal_cameras"] = tuple(kw["goal_cameras"])
    kw["task"], kw["split"] = t.get("name", "pick"), t.get("split", "train")
    if t.get("max_episode_steps") is not None:
        kw["max_episode_steps"] = int(t["max_episode_steps"])
    return kw


def make_env(env_cfg: Any, task_cfg: Any):
    """The gymnasium env described by an `env` and a `task` config (dataclass, DictConfig or dict)."""
    return gym.make(ENV_ID, **env_kwargs(env_cfg, task_cfg))


def check_env_resources(
    env_cfg: Any,
    tasks: str | Sequence[str],
    num_envs: int,
    episodes: int,
    max_episode_steps: int | None = None,
    out: str | None = None,
    video_size: int = 0,
) -> RolloutFootprint:
    """Check that `num_envs` env processes running `episodes` episodes of `tasks` with `env_cfg` fit this
    machine (image size, cores, memory; with `out`, the disk there): one ConfigError line naming the key
    and the estimate otherwise (vla.core.limits). The horizon is the longest of the tasks' (or
    `max_episode_steps`). `video_size`: the side of replayed videos, capped like a camera image."""
    if video_size:
        check_image_size("video_size", video_size)
    e = _as_dict(env_cfg)
    names = [tasks] if isinstance(tasks, str) else list(tasks)
    found = [get_task(t) for t in names]
    horizon = int(max_episode_steps or max((t.horizon for t in found), default=1))
    goal = any(getattr(t, "has_goal_cloud", False) for t in found)
    return check_rollout_resources(
        image_size=e.get("image_size", EnvConfig.image_size),
        cameras=list(e.get("cameras", ("static", "wrist"))),
        depth=bool(e.get("depth", True)),
        segmentation=bool(e.get("segmentation", False)),
        horizon=horizon,
        num_envs=int(num_envs),
        episodes=int(episodes),
        goal_image_size=int(e.get("goal_image_size", EnvConfig.goal_image_size)) if goal else 0,
        out=out,
    )

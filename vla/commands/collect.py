"""`vla collect`: scripted-expert demonstrations from the simulator into an episode store.

Runs the task's scripted expert through the shared rollout loop (`vla.core.rollout`; an
`AsyncVectorEnv` of `num_envs` sub-processes, or one in-process env when num_envs=1) with an
`EpisodeRecorder` per episode. Successful episodes are kept (all of them with keep_failed=true); when
fewer than `episodes` succeed, further seeds are tried, up to `max_attempts` rollouts in total. An
existing store at `out` is appended to (its features must match) unless overwrite=true, and the new
episodes continue with new seeds: the first seed tried is the one after the largest seed the store already
holds for this task and split (or `seed`, when that is later), so a re-run never stores the same scene
twice. The resolved config, the env settings and the action convention are saved in the store's attributes.
A bad argument (a value this command checks, a store whose features differ) is a `ConfigError`: one line,
exit code 2.

    vla collect task=pick episodes=200 num_envs=2 env.image_size=128 out=outputs/demos/pick.zarr
    vla collect task=stack task.split=heldout env.cameras=[static] env.depth=true episodes=20
    vla collect task=arrange env.depth=true record_clouds=true per_frame_clouds=true pointcloud.num_points=256

Point clouds (vla.pointcloud.recording): a goal task's goal cloud (`goal/points` + `goal/colors` of the
env) is stored once per episode beside the store (`<out>/episode_clouds/`), never per frame.
`record_clouds` (default: whenever env.depth=true) also stores each episode's final-scene cloud from the
`pointcloud` pipeline (`pointcloud.num_points`, `pointcloud.cameras` ...; the robot is left out when
env.segmentation=true), and `per_frame_clouds=true` every frame's cloud as `pointcloud/points` and
`pointcloud/colors`; the pipeline settings and the fixed cameras' models go in the store's metadata
(`meta.pointcloud`), so a checkpoint can rebuild the same cloud from depth at run time.

The simulator settings come from the shared `env` and `task` config groups (`configs/env/`, `configs/task/`;
schemas in `sim.config`), so `task=push` picks a task preset and `env.image_size=224` changes rendering.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from omegaconf import OmegaConf
from tqdm import tqdm

import sim
from sim.camera import DEFAULT_CAMERAS
from sim.config import EnvConfig, TaskConfig, check_env_resources, env_kwargs
from sim.experts import make_expert
from sim.scene import palette_rgb
from sim.vector import make_vector_env
from vla.core.config import (
    ConfigError,
    argument_checks,
    check_number,
    check_path_name,
    compose,
    register_config,
    split_positionals,
    to_dataclass,
)
from vla.core.rollout import ProgressBar, run_rollouts
from vla.core.types import AUX_KEY, COLOUR_PREFIX, CONTROL_HZ, GOAL_COLORS_KEY, GOAL_POINTS_KEY
from vla.data.recorder import EpisodeRecorder, RecordTally, aux_feature, features_from_spaces
from vla.data.store import EpisodeStore
from vla.pointcloud.geometry import CameraModel
from vla.pointcloud.model_inputs import camera_to_dict
from vla.pointcloud.pipeline import PointCloudConfig, PointCloudPipeline
from vla.pointcloud.recording import PointCloudRecorder, fixed_cameras, live_cameras, pointcloud_features


@register_config("collect")
@dataclass
class CollectConfig:
    env: EnvConfig = field(
        default_factory=lambda: EnvConfig(depth=False)
    )  # group `env`: cameras, image_size, ...
    task: TaskConfig = field(default_factory=TaskConfig)  # group `task`: name, split, max_episode_steps
    episodes: int = 20  # episodes to store
    num_envs: int = 1
    out: str = "outputs/demos/pick.zarr"
    keep_failed: bool = False
    noise: float = 0.0  # expert action noise (std, in action units)
    seed: int = 0  # first seed within the split (appending: after the store's largest); expert noise RNG too
    max_attempts: int = 0  # rollouts in total before giving up; 0 = 3 * episodes
    overwrite: bool = False  # replace an existing store at `out` (false: append, continuing with new seeds)
    pointcloud: PointCloudConfig = field(default_factory=PointCloudConfig)  # pipeline of recorded clouds
    record_clouds: bool | None = None  # each episode's final-scene cloud (needs depth); null: if env.depth
    per_frame_clouds: bool = False  # every frame's cloud as pointcloud/points + pointcloud/colors
    # true: also record aux/scene, where the named object and its goal are in each frame (privileged
    # simulator state; a training target for `vla train aux_weight=...`, never a model input)
    aux: bool = False


def _env_kwargs(cfg: CollectConfig) -> dict[str, Any]:
    return env_kwargs(cfg.env, cfg.task)


def _records_clouds(cfg: CollectConfig) -> bool:
    """Whether the pipeline runs: per-frame clouds, or final-scene clouds (record_clouds=null: whenever the
    env renders depth for every `pointcloud.cameras` one, static cameras only with num_envs > 1)."""
    if cfg.record_clouds is None:
        cams = cfg.pointcloud.cameras
        rendered = cfg.env.depth and all(c in cfg.env.cameras for c in cams)
        movable = any(DEFAULT_CAMERAS[c].mounted_on_hand for c in cams if c in DEFAULT_CAMERAS)
        final = rendered and not (movable and cfg.num_envs > 1)
    else:
        final = cfg.record_clouds
    return bool(final or cfg.per_frame_clouds)


def _store_features(cfg: CollectConfig, env: Any) -> dict[str, Any]:
    """The env's features without the goal cloud (stored per episode) plus per-frame clouds on request."""
    feats = features_from_spaces(env.observation_space, env.action_space, cfg.env.action_space)
    feats = {k: v for k, v in feats.items() if k not in (GOAL_POINTS_KEY, GOAL_COLORS_KEY)}
    for k in [k for k in feats if k.startswith(COLOUR_PREFIX)]:  # env.colour_masks: name the numbers
        feats[k] = dataclasses.replace(feats[k], info={"palette": palette_rgb()})
    aux = {AUX_KEY: aux_feature()} if cfg.aux else {}
    return {**feats, **aux, **pointcloud_features(cfg.pointcloud.num_points, cfg.per_frame_clouds)}


def _clouds_meta(cfg: CollectConfig, env: Any) -> dict[str, Any]:
    """meta.pointcloud: pipeline settings and the fixed cameras' models (K, size, pose)."""
    fixed = [c for c in cfg.pointcloud.cameras if not DEFAULT_CAMERAS[c].mounted_on_hand]
    cams = [camera_to_dict(CameraModel.from_env(env, c)) for c in fixed]
    return {"config": dataclasses.asdict(cfg.pointcloud), "cameras": cams, "per_frame": cfg.per_frame_clouds}


def _open_store(cfg: CollectConfig, env: Any) -> EpisodeStore:
    feats = _store_features(cfg, env)
    out = Path(cfg.out)
    empty_dir = out.is_dir() and not any(out.iterdir())  # filled: the store is created in its place
    if out.exists() and not cfg.overwrite and not empty_dir:
        store = EpisodeStore.open(out, mode="a")
        if store.features != feats:
            store.close()
            raise ConfigError(
                f"{out}: existing store has features {sorted(store.features)} that differ from this "
                f"collection's {sorted(feats)} (shapes/dtypes); choose another out= or overwrite=true",
                key="out",
            )
        return store
    env_meta = {**_env_kwargs(cfg), "cameras": list(cfg.env.cameras)}
    meta = {"source": "sim", "action_space": cfg.env.action_space, "env": env_meta, "robot": "franka_panda"}
    if _records_clouds(cfg):
        env.reset(seed=0)  # camera poses need a reset env
        meta["pointcloud"] = _clouds_meta(cfg, env)
    return EpisodeStore.create(out, feats, fps=CONTROL_HZ, meta=meta, overwrite=cfg.overwrite or empty_dir)


def next_seed(store: EpisodeStore, task: str, split: str) -> int:
    """The split-relative index of the first seed after the largest one `store` holds for `task` on
    `split` (0 when it holds none). Stored seeds are absolute (`sim.task_seeds`: the held-out range starts
    at an offset), episodes without a seed (imported ones) are ignored."""
    base = sim.task_seeds(task, split, 1)[0]
    metas = [store.episode_meta(i) for i in range(store.num_episodes)]
    same = [m for m in metas if (m.get("task"), m.get("split")) == (task, split)]
    seeds = [int(m["seed"]) for m in same if m.get("seed") is not None]
    return max(seeds) - base + 1 if seeds else 0


def check_config(cfg: CollectConfig) -> None:
    """The checks of the arguments that need no simulator; a ConfigError (one line, exit 2) names the key."""
    for key in ("episodes", "num_envs"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key} must be >= 1, got {getattr(cfg, key)}", key=key)
    for key in ("max_attempts", "seed"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{key} must be >= 0, got {getattr(cfg, key)}", key=key)
    check_number(cfg.noise, "noise", 0, 1)  # std in action units (the actions span [-1, 1])
    check_number(cfg.env.action_noise, "env.action_noise", 0, 1)  # metres per step
    if cfg.task.max_episode_steps is not None and cfg.task.max_episode_steps < 1:
        key = "task.max_episode_steps"
        raise ConfigError(f"{key} must be >= 1 (or null), got {cfg.task.max_episode_steps}", key)
    if not cfg.out:
        raise ConfigError("out: expected the episode store's directory, got ''", "out")
    check_path_name(cfg.out, "out")
    out = Path(cfg.out)
    if out.exists() and not (out / "zarr.json").is_file() and not cfg.overwrite:
        if out.is_file() or any(out.iterdir()):  # collect appends to a store, or creates one
            raise ConfigError(f"out={cfg.out} exists and is not an episode store", "out", "output-exists")
    check_pointcloud(cfg.pointcloud)
    if cfg.env.action_space != "ee_delta":
        raise ConfigError(
            f"the scripted experts act in ee_delta, got env.action_space={cfg.env.action_space!r}",
            key="env.action_space",
        )
    clouds = _records_clouds(cfg)
    if clouds and not cfg.env.depth:
        raise ConfigError("record_clouds/per_frame_clouds need depth images: set env.depth=true", "env.depth")
    if clouds:
        unknown = [c for c in cfg.pointcloud.cameras if c not in cfg.env.cameras]
        if unknown:
            raise ConfigError(
                f"pointcloud.cameras {list(cfg.pointcloud.cameras)} must be rendered: env.cameras is "
                f"{list(cfg.env.cameras)} (missing {unknown})",
                key="pointcloud.cameras",
            )
        hand = [c for c in cfg.pointcloud.cameras if DEFAULT_CAMERAS[c].mounted_on_hand]
        if hand and cfg.num_envs > 1:
            raise ConfigError(
                f"camera(s) {hand} move with the hand: use num_envs=1 for their clouds", key="num_envs"
            )


def check_pointcloud(pc: PointCloudConfig, key: str = "pointcloud") -> None:
    """The point-cloud settings (also where this run records no cloud): known cameras, positive sizes and
    distances, the pipeline's own checks; a ConfigError (exit 2) names the key."""
    if not pc.cameras or any(c not in DEFAULT_CAMERAS for c in pc.cameras):
        raise ConfigError(f"{key}.cameras={list(pc.cameras)}: expected some of {list(DEFAULT_CAMERAS)}", key)
    for name in ("voxel_size", "table_margin", "table_height"):
        check_number(getattr(pc, name), f"{key}.{name}", None if name == "table_height" else 0, 10)
    for name in ("ransac_distance", "max_depth", "depth_scale"):
        check_number(getattr(pc, name), f"{key}.{name}", 0, 1000, low_open=True)
    for name in ("min_points", "fps_candidates"):
        check_number(getattr(pc, name), f"{key}.{name}", 0)
    with argument_checks(key):
        PointCloudPipeline(pc)


def collect(cfg: CollectConfig, resolved: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run the collection described by `cfg`; return the summary dict."""
    check_config(cfg)
    check_env_resources(cfg.env, cfg.task.name, cfg.num_envs, cfg.episodes, cfg.task.max_episode_steps, cfg.out)  # noqa: E501
    max_attempts = cfg.max_attempts or 3 * cfg.episodes
    clouds = _records_clouds(cfg)
    env = gym.make(sim.ENV_ID, **_env_kwargs(cfg))
    venv, store = None, None
    try:
        store = _open_store(cfg, env)
        store.update_meta(collect=dict(resolved or {}))
        has_goal = sim.tasks.get_task(cfg.task.name).has_goal_cloud
        wrap = _cloud_recorder(cfg, env) if clouds or has_goal else None
        if cfg.num_envs > 1:
            env.close()
            env = None
            venv = make_vector_env(cfg.num_envs, **_env_kwargs(cfg))
        start_frames, start_eps = store.num_frames, store.num_episodes
        tally = RecordTally(limit=cfg.episodes)
        task = cfg.task.name
        first = max(cfg.seed, next_seed(store, task, cfg.task.split))  # never a seed the store holds
        all_seeds = sim.task_seeds(task, cfg.task.split, first + max_attempts)[first:]
        if first != cfg.seed:
            held = f"{task} {cfg.task.split} seeds"
            print(f"[collect] {cfg.out} already holds {held}: continuing at seed {all_seeds[0]}")
        results: list[Any] = []
        t0 = time.perf_counter()
        bar = tqdm(total=cfg.episodes, desc=f"collect {task}", unit="ep")
        progress = ProgressBar(bar, lambda: {"kept": tally.episodes_kept, "frames": tally.frames_kept})

        def observers(seed: int) -> Sequence[Any]:
            rec = EpisodeRecorder(store, keep_failed=cfg.keep_failed, tally=tally)
            return [wrap(rec) if wrap is not None else rec, progress]

        while tally.episodes_kept < cfg.episodes and len(results) < len(all_seeds):
            need = cfg.episodes - tally.episodes_kept
            rate = max(np.mean([r.success for r in results]) if results else 1.0, 0.1)
            n = min(len(all_seeds) - len(results), max(need, int(np.ceil(need / rate))))
            if cfg.keep_failed:
                n = min(n, need)
            seeds = all_seeds[len(results) : len(results) + n]
            bar.total = max(bar.total, len(results) + n)
            results += run_rollouts(
                venv if venv is not None else env,
                lambda i: make_expert(task, cfg.noise, first + i),  # one expert per (sub-)env
                seeds,
                observers,
                stop=lambda: tally.episodes_kept >= cfg.episodes,
            )
        bar.close()
        wall = time.perf_counter() - t0
    finally:
        if venv is not None:
            venv.close()
        if env is not None:
            env.close()
        if store is not None:
            store.close()  # release the writer lock; reading on is fine
    frames = store.num_frames - start_frames
    nbytes = store.nbytes()
    summary = {
        "out": str(store.path),
        "episodes": store.num_episodes - start_eps,
        "episodes_in_store": store.num_episodes,
        "attempts": len(results),
        "seeds": [int(min(r.seed for r in results)), int(max(r.seed for r in results))] if results else [],
        "success_rate": float(np.mean([r.success for r in results])) if results else 0.0,
        "errors": tally.dropped_errors,
        "frames": frames,
        "bytes": nbytes,
        "bytes_per_frame": nbytes / max(store.num_frames, 1),
        "wall_s": wall,
        "episodes_per_min": 60.0 * len(results) / max(wall, 1e-9),
    }
    return summary


def _cloud_recorder(cfg: CollectConfig, env: Any) -> Any:
    """A factory wrapping an EpisodeRecorder in a PointCloudRecorder (goal clouds once per episode).
    Called while the in-process env is alive: camera models and the robot's body id come from it (the
    vector env's workers build identical scenes)."""
    if not _records_clouds(cfg):
        return lambda rec: PointCloudRecorder(rec, None)
    env.reset(seed=0)  # camera poses and the robot exist after a reset
    hand = [c for c in cfg.pointcloud.cameras if DEFAULT_CAMERAS[c].mounted_on_hand]
    cams: Any = (
        live_cameras(env, cfg.pointcloud.cameras) if hand else fixed_cameras(env, cfg.pointcloud.cameras)
    )
    drop = (int(env.unwrapped.robot.uid),) if cfg.env.segmentation else ()
    pipe = PointCloudPipeline(cfg.pointcloud)
    return lambda rec: PointCloudRecorder(rec, pipe, cams, cfg.per_frame_clouds, drop)


def _seed_text(s: Mapping[str, Any]) -> str:
    seeds = s.get("seeds") or []
    return f" (seeds {seeds[0]}-{seeds[1]})" if seeds else ""


def format_summary(s: Mapping[str, Any]) -> str:
    return (
        f"collected {s['episodes']} episodes ({s['frames']} frames) in {s['wall_s']:.1f}s from "
        f"{s['attempts']} rollouts{_seed_text(s)}: success rate {100 * s['success_rate']:.0f}%, "
        f"{s['episodes_per_min']:.1f} episodes/min, {s['errors']} errors\n"
        f"store {s['out']}: {s['episodes_in_store']} episodes, {s['bytes'] / 1e6:.1f} MB, "
        f"{s['bytes_per_frame'] / 1e3:.1f} kB/frame"
    )


def main(argv: Sequence[str]) -> int:
    """`vla collect [key=value ...]`."""
    cfg_node = compose("collect", split_positionals(argv, []))
    cfg = to_dataclass(cfg_node, CollectConfig)
    summary = collect(cfg, resolved=OmegaConf.to_container(cfg_node, resolve=True))
    print(format_summary(summary))
    if summary["episodes"] < cfg.episodes:
        print(f"warning: only {summary['episodes']} of {cfg.episodes} requested episodes were kept")
        return 1
    return 0

"""Goal-scene data: (initial cloud, instruction, goal cloud) triples from the simulator's scripted experts.

`generate_goal_scenes` runs the scripted expert of each task (`sim.experts.make_expert`) through the one
rollout loop (`vla.core.rollout.run_episode`) with a `GoalCapture` observer, which turns the first
observation and the observation after the last action into clouds with a `PointCloudPipeline` (the arm
removed by its segmentation id, so the clouds hold the table-top scene only). Successful episodes are
kept (failed ones too with `keep_failed`); a scene whose first or final cloud has too few points (the
object hidden behind the gripper, say) is skipped and counted, never stored empty. A `GoalSet` is saved as
one `.npz` file, written atomically, with these arrays (E episodes, N points):
    initial_points  float32 [E,N,3]   base frame, metres        initial_colors  uint8 [E,N,3]
    goal_points     float32 [E,N,3]                              goal_colors     uint8 [E,N,3]
    instruction     str     [E]       task str [E]    split str [E]    seed int64 [E]    success bool [E]

    goals = generate_goal_scenes(["pick", "place"], episodes=8, split="train", image_size=128)
    goals.save("outputs/goals/train.npz");  GoalSet.load("outputs/goals/train.npz").initial_points.shape
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

import sim
from sim.experts import make_expert
from vla.core.io import atomic_write_bytes
from vla.core.rollout import run_episode
from vla.pointcloud.episode_clouds import EpisodeClouds
from vla.pointcloud.model_inputs import camera_from_dict
from vla.pointcloud.pipeline import (
    Cloud,
    PointCloudConfig,
    PointCloudPipeline,
    frames_from_env,
    frames_from_obs,
)
from vla.pointcloud.recording import COLORS_KEY, POINTS_KEY

_CLOUD_KEYS = ("initial_points", "initial_colors", "goal_points", "goal_colors")


@dataclass(frozen=True)
class GoalSet:
    """E goal-scene triples; see the module docstring for the arrays and their shapes."""

    initial_points: np.ndarray
    initial_colors: np.ndarray
    goal_points: np.ndarray
    goal_colors: np.ndarray
    instruction: np.ndarray
    task: np.ndarray
    split: np.ndarray
    seed: np.ndarray
    success: np.ndarray

    def __post_init__(self) -> None:
        self.check("GoalSet")

    def check(self, where: str) -> None:
        """ValueError naming `where` and the key unless every array has the documented shape/dtype."""
        e = len(self.seed)
        n = self.initial_points.shape[1] if self.initial_points.ndim == 3 else -1
        for key in _CLOUD_KEYS:
            arr = getattr(self, key)
            dtype = np.float32 if key.endswith("points") else np.uint8
            if arr.shape != (e, n, 3) or arr.dtype != dtype:
                raise ValueError(
                    f"{where}: key {key!r}: expected {np.dtype(dtype).name} [E={e}, N={n}, 3], "
                    f"got {arr.dtype} {list(arr.shape)}"
                )
        for key in ("instruction", "task", "split", "success"):
            if getattr(self, key).shape != (e,):
                raise ValueError(
                    f"{where}: key {key!r}: expected shape [E={e}], got {list(getattr(self, key).shape)}"
                )
        for key in ("initial_points", "goal_points"):
            if not np.all(np.isfinite(getattr(self, key))):
                raise ValueError(f"{where}: key {key!r} has non-finite coordinates")

    def __len__(self) -> int:
        return len(self.seed)

    @property
    def num_points(self) -> int:
        return int(self.initial_points.shape[1])

    def subset(self, idx: Sequence[int]) -> GoalSet:
        idx = np.asarray(idx, dtype=np.int64)
        return GoalSet(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def save(self, path: str | os.PathLike) -> Path:
        buf = io.BytesIO()
        np.savez_compressed(buf, **{f.name: getattr(self, f.name) for f in fields(self)})
        return atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> GoalSet:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"goal-scene file not found: {path}")
        with np.load(path, allow_pickle=False) as z:
            missing = sorted({f.name for f in fields(cls)} - set(z.files))
            if missing:
                raise ValueError(f"{path}: not a goal-scene file, missing keys {missing}")
            arrays = {f.name: z[f.name] for f in fields(cls)}
        out = object.__new__(cls)
        for k, v in arrays.items():
            object.__setattr__(out, k, v)
        out.check(str(path))
        return out

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> GoalSet:
        if not records:
            raise ValueError("GoalSet.from_records: no episodes (did every expert episode fail?)")
        return cls(
            initial_points=np.stack([r["initial"].points for r in records]).astype(np.float32),
            initial_colors=np.stack([r["initial"].colors for r in records]).astype(np.uint8),
            goal_points=np.stack([r["goal"].points for r in records]).astype(np.float32),
            goal_colors=np.stack([r["goal"].colors for r in records]).astype(np.uint8),
            instruction=np.array([str(r["instruction"]) for r in records]),
            task=np.array([str(r["task"]) for r in records]),
            split=np.array([str(r["split"]) for r in records]),
            seed=np.array([int(r["seed"]) for r in records], dtype=np.int64),
            success=np.array([bool(r["success"]) for r in records]),
        )


class GoalCapture:
    """Rollout observer: the initial and final clouds of one episode of one env (`.initial`, `.goal`)."""

    def __init__(
        self, env: Any, pipeline: PointCloudPipeline, cameras: Sequence[str], drop_robot: bool = False
    ) -> None:
        self.env, self.pipeline, self.cameras, self.drop_robot = env, pipeline, list(cameras), drop_robot
        self.initial: Cloud | None = None
        self.goal: Cloud | None = None
        self.problem: str | None = None  # why a cloud could not be made (e.g. the scene is occluded)
        self._seed = 0

    def _process(self, obs: Mapping[str, Any], seed: int) -> Cloud | None:
        try:
            return self.pipeline.process(
                frames_from_env(self.env, obs, self.cameras, self.drop_robot), seed=seed
            )
        except ValueError as e:  # too few points: recorded, the generator skips the scene
            self.problem = str(e)
            return None

    def on_episode_start(self, obs: Mapping[str, Any], info: Mapping[str, Any]) -> None:
        self._seed = int(info.get("seed", 0))
        self.goal, self.problem = None, None
        self.initial = self._process(obs, self._seed)

    def on_step(self, obs, action, reward, terminated, truncated, info) -> None:
        return None

    def on_final_observation(self, obs: Mapping[str, Any]) -> None:
        self.goal = self._process(obs, self._seed + 1)

    def on_episode_end(self, result: Any) -> None:
        return None


def generate_goal_scenes(
    tasks: Sequence[str],
    episodes: int,
    split: str = "train",
    pointcloud: PointCloudConfig | None = None,
    image_size: int = 128,
    noise: float = 0.0,
    keep_failed: bool = False,
    progress: bool = True,
    drop_robot: bool = True,
) -> GoalSet:
    """Run `episodes` expert episodes per task (the split's first seeds) and capture their goal triples;
    `drop_robot` removes the arm (segmentation ids) so the clouds hold the table-top scene only."""
    import gymnasium as gym

    cfg = pointcloud or PointCloudConfig()
    pipe = PointCloudPipeline(cfg)
    records, failed, unusable = [], 0, 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks) * episodes, desc="goal scenes", unit="ep")
    for task in tasks:
        env = gym.make(
            sim.ENV_ID,
            task=task,
            split=split,
            cameras=tuple(cfg.cameras),
            image_size=image_size,
            segmentation=drop_robot,
        )
        try:
            for seed in sim.task_seeds(task, split, episodes):
                cap = GoalCapture(env, pipe, cfg.cameras, drop_robot)
                res = run_episode(env, make_expert(task, noise=noise, seed=seed), seed, observers=[cap])
                if bar is not None:
                    bar.update(1)
                if res.error is not None:
                    raise RuntimeError(f"goal scenes: {task} seed {seed} failed: {res.error}")
                if not (res.success or keep_failed):
                    failed += 1
                    continue
                if cap.initial is None or cap.goal is None:
                    unusable += 1
                    if progress:
                        print(f"goal scenes: skipped {task} seed {seed}: {cap.problem}")
                    continue
                records.append(
                    {
                        "initial": cap.initial,
                        "goal": cap.goal,
                        "instruction": res.instruction,
                        "task": task,
                        "split": split,
                        "seed": seed,
                        "success": res.success,
                    }
                )
        finally:
            env.close()
    if bar is not None:
        bar.close()
    if progress:
        print(
            f"goal scenes: kept {len(records)} of {len(tasks) * episodes} episodes "
            f"({failed} expert failures, {unusable} with too few visible points)"
        )
    return GoalSet.from_records(records)


def goal_set_from_store(store: Any, source: str = "auto", seed: int = 0) -> tuple[GoalSet, dict[str, Any]]:
    """Goal-scene triples from an episode store recorded with clouds (`vla collect ... record_clouds=true`):
    initial cloud = frame 0's `pointcloud/points` if stored, else frame 0's depth through the pipeline and
    camera models saved in the store's `meta.pointcloud`; goal = the episode's goal cloud (`source`: auto =
    the env's goal where given, else the final scene). Returns the set and the pipeline settings used."""

    meta = dict(store.meta.get("pointcloud") or {})
    if not meta:
        raise ValueError(f"{store.path}: no meta.pointcloud (collect with env.depth=true record_clouds=true)")
    pcfg = dict(meta["config"])
    pipe = PointCloudPipeline(PointCloudConfig(**pcfg))
    cams = {c["name"]: camera_from_dict(c) for c in meta.get("cameras") or []}
    clouds = EpisodeClouds.open(store)
    records = []
    for e in range(store.num_episodes):
        start = store.episode_slice(e).start
        if POINTS_KEY in store.features:
            pts = store.read(POINTS_KEY, start, start + 1)[0]
            initial = Cloud(pts, store.read(COLORS_KEY, start, start + 1)[0], len(np.unique(pts, axis=0)))
        else:
            obs = {
                k: store.read(k, start, start + 1)[0]
                for k in store.features
                if k.split("/")[0] in ("depth", "images")
            }
            initial = pipe.process(frames_from_obs(obs, cams), seed=seed + e)
        gp, gc = clouds.goal(e, source)
        m = store.episode_meta(e)
        records.append(
            {
                "initial": initial,
                "goal": Cloud(gp, gc, len(np.unique(gp, axis=0))),
                "instruction": m.get("instruction", ""),
                "task": m.get("task", ""),
                "split": m.get("split", ""),
                "seed": int(m.get("seed", e)),
                "success": bool(m.get("success", True)),
            }
        )
    return GoalSet.from_records(records), pcfg

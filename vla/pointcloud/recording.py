"""Point clouds in the episode store: the episode's goal clouds once per episode, per-frame clouds on request.

`PointCloudRecorder` is a rollout Observer (see `vla.core.rollout`) that wraps the data package's
`EpisodeRecorder` through its public Observer interface and forwards every frame to it, adding

    pointcloud/points  float32 [N,3]   the frame's own cloud (base frame, metres)   only with per_frame=True
    pointcloud/colors  uint8   [N,3]   its RGB colours                              only with per_frame=True

and writes, once per episode (vla.pointcloud.episode_clouds, `<store>/episode_clouds/<e>.npz`, before the
store commits the episode):
    goal   the env's goal cloud `goal/points` + `goal/colors` (goal tasks), from the first observation
    final  the final scene: the cloud of the observation after the episode's last action (with a pipeline)

Create the store with `pointcloud_features(num_points, per_frame)` merged into its features (only the
per-frame keys are frame features now; without per_frame it adds nothing). Stores written by the previous
layout, with `goal/points` repeated on every frame, still open and read (`read_goal_cloud` reads both).

    feats = features_from_spaces(env.observation_space, env.action_space)
    feats = {**feats, **pointcloud_features(1024, per_frame=True)}
    store = EpisodeStore.create(out, feats, fps=10)
    cams = fixed_cameras(env, ["static"])                      # or live_cameras(env, [...]) for one env
    rec = PointCloudRecorder(EpisodeRecorder(store), PointCloudPipeline(cfg), cams, per_frame=True)
    run_episode(env, make_expert("pick"), seed=0, observers=[rec])
    goal = read_goal_cloud(EpisodeStore.open(out), 0)          # Cloud of episode 0's final scene
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from sim.camera import DEFAULT_CAMERAS
from vla.core.types import FeatureSpec, FeatureType
from vla.pointcloud.episode_clouds import EpisodeClouds, has_episode_clouds, write_episode_clouds
from vla.pointcloud.geometry import CameraModel
from vla.pointcloud.pipeline import Cloud, PointCloudPipeline, frames_from_obs

POINTS_KEY, COLORS_KEY = "pointcloud/points", "pointcloud/colors"
GOAL_POINTS_KEY, GOAL_COLORS_KEY = "goal/points", "goal/colors"

CameraSource = Mapping[str, CameraModel] | Callable[[], Mapping[str, CameraModel]]


def pointcloud_features(num_points: int, per_frame: bool = False) -> dict[str, FeatureSpec]:
    """Store (frame) features of the per-frame cloud with `per_frame`; goal clouds are per episode."""
    xyz = FeatureSpec(
        FeatureType.POINT_CLOUD, (int(num_points), 3), "float32", ("x", "y", "z"), {"frame": "base"}
    )
    rgb = FeatureSpec(FeatureType.POINT_CLOUD, (int(num_points), 3), "uint8", ("r", "g", "b"))
    return {POINTS_KEY: xyz, COLORS_KEY: rgb} if per_frame else {}


def fixed_cameras(env: Any, cameras: Sequence[str]) -> dict[str, CameraModel]:
    """Camera models of static cameras, read once from the env (safe for vector envs: poses never move)."""

    moving = [c for c in cameras if c in DEFAULT_CAMERAS and DEFAULT_CAMERAS[c].mounted_on_hand]
    if moving:
        raise ValueError(f"fixed_cameras: {moving} move with the hand; use live_cameras(env, ...) for them")
    return {c: CameraModel.from_env(env, c) for c in cameras}


def live_cameras(env: Any, cameras: Sequence[str]) -> Callable[[], dict[str, CameraModel]]:
    """A camera source that reads every camera's pose now (wrist cameras included; one env only)."""
    return lambda: {c: CameraModel.from_env(env, c) for c in cameras}


def read_goal_cloud(store: Any, episode: int, source: str = "final") -> Cloud:
    """The goal cloud of `episode`: per-episode clouds ("final" scene by default, "goal" = the env's, or
    "auto"), or, in stores of the previous layout, the `goal/points` frame feature (the final scene)."""
    if has_episode_clouds(store.path):
        pts, cols = EpisodeClouds.open(store).goal(episode, source)
        return Cloud(pts, cols, len(np.unique(pts, axis=0)))
    for key in (GOAL_POINTS_KEY, GOAL_COLORS_KEY):
        if key not in store.features:
            raise KeyError(f"{store.path}: no goal cloud ({key!r}); was it recorded with PointCloudRecorder?")
    start = store.episode_slice(episode).start
    pts = store.read(GOAL_POINTS_KEY, start, start + 1)[0]
    return Cloud(pts, store.read(GOAL_COLORS_KEY, start, start + 1)[0], len(np.unique(pts, axis=0)))


class PointCloudRecorder:
    """Observer: forwards frames (with per-frame clouds on request) and writes the episode's clouds."""

    def __init__(
        self,
        recorder: Any,
        pipeline: PointCloudPipeline | None,
        cameras: CameraSource | None = None,
        per_frame: bool = False,
        drop_ids: Sequence[int] = (),
    ) -> None:
        store = getattr(recorder, "store", None)
        if store is None:
            raise ValueError("PointCloudRecorder: wrap an EpisodeRecorder (it needs the recorder's store)")
        if pipeline is None and per_frame:
            raise ValueError("PointCloudRecorder: per_frame=True needs a PointCloudPipeline")
        if pipeline is not None and cameras is None:
            raise ValueError("PointCloudRecorder: a pipeline needs cameras (fixed_cameras or live_cameras)")
        feats = store.features
        legacy = sorted(k for k in (GOAL_POINTS_KEY, GOAL_COLORS_KEY) if k in feats)
        if legacy:
            raise ValueError(
                f"PointCloudRecorder: the store has frame features {legacy} (the previous layout); goal "
                "clouds are stored once per episode now: create the store without them"
            )
        want = pointcloud_features(pipeline.cfg.num_points, per_frame) if pipeline is not None else {}
        missing = sorted(set(want) - set(feats))
        if missing:
            raise ValueError(
                f"PointCloudRecorder: the store lacks features {missing}; add pointcloud_features()"
            )
        if not per_frame and POINTS_KEY in feats:
            raise ValueError(f"PointCloudRecorder: the store has {POINTS_KEY!r}: pass per_frame=True")
        bad = [k for k in want if feats[k].shape != want[k].shape]
        if bad:
            raise ValueError(
                f"PointCloudRecorder: store features {bad} have shape {feats[bad[0]].shape}, "
                f"but the pipeline makes {want[bad[0]].shape}"
            )
        self.recorder, self.store, self.pipeline = recorder, store, pipeline
        self.cameras, self.per_frame = cameras, per_frame
        self.drop_ids = tuple(int(i) for i in drop_ids)  # segmentation ids to leave out (e.g. the robot)
        self._env_goal: tuple[np.ndarray, np.ndarray] | None = None
        self._final: Cloud | None = None
        self._length = 0
        self._seed = 0
        self._first: dict[str, Any] = {}
        self.problems: list[str] = []  # episodes stored without a final-scene cloud, and why

    def _cloud(self, obs: Mapping[str, Any], t: int) -> Cloud:
        cams = self.cameras() if callable(self.cameras) else self.cameras
        assert self.pipeline is not None and cams is not None
        return self.pipeline.process(frames_from_obs(obs, cams, self.drop_ids), seed=self._seed * 100_003 + t)

    def _with_frame_cloud(self, obs: Mapping[str, Any], t: int) -> dict[str, Any]:
        out = dict(obs)
        if self.per_frame:
            c = self._cloud(obs, t)
            out[POINTS_KEY], out[COLORS_KEY] = c.points, c.colors
        return out

    # ---- Observer ---------------------------------------------------------------------------------
    def on_episode_start(self, obs: Mapping[str, Any], info: Mapping[str, Any]) -> None:
        self._seed = int(info.get("seed", 0))
        self._length, self._final = 0, None
        self._env_goal = None
        if GOAL_POINTS_KEY in obs:
            cols = obs.get(GOAL_COLORS_KEY)
            pts = np.array(obs[GOAL_POINTS_KEY], dtype=np.float32, copy=True)
            cols = np.zeros(pts.shape, np.uint8) if cols is None else np.array(cols, np.uint8, copy=True)
            self._env_goal = (pts, cols)
        self._first = self._with_frame_cloud(obs, 0)
        self.recorder.on_episode_start(self._first, info)

    def on_step(self, obs, action, reward, terminated, truncated, info) -> None:
        # the first step's observation is the reset one: reuse its cloud
        frame = self._first if self._length == 0 else self._with_frame_cloud(obs, self._length)
        self._length += 1
        self.recorder.on_step(frame, action, reward, terminated, truncated, info)

    def on_final_observation(self, obs: Mapping[str, Any]) -> None:
        if self.pipeline is not None:
            try:
                self._final = self._cloud(obs, 99_999)
            except ValueError as e:  # too few points (everything knocked off the table): no final cloud
                self.problems.append(f"seed {self._seed}: no final-scene cloud: {e}")

    def on_episode_end(self, result: Any) -> None:
        clouds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if self._env_goal is not None:
            clouds["goal"] = self._env_goal
        if self._final is not None:
            clouds["final"] = (self._final.points, self._final.colors)
        if result.error is None and self._length > 0 and clouds:
            # written before the recorder commits the episode (index = the store's count now); a dropped
            # episode leaves a file past the committed ones that the next kept episode overwrites
            write_episode_clouds(self.store.path, self.store.num_episodes, result.seed, self._length, clouds)
        self._env_goal, self._final, self._first = None, None, {}
        self.recorder.on_episode_end(result)

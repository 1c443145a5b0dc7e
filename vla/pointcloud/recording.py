"""Point clouds in the episode store: per-frame clouds on request, the episode's goal cloud always.

`PointCloudRecorder` is a rollout Observer (see `vla.eval.rollout`) that wraps the data package's
`EpisodeRecorder` through its public Observer interface. It turns each observation's depth images into a
fixed-size cloud with a `PointCloudPipeline` and, once the episode has ended, replays the episode into the
wrapped recorder with extra keys added to every frame:

    pointcloud/points  float32 [N,3]   the frame's own cloud (base frame, metres)   only with per_frame=True
    pointcloud/colors  uint8   [N,3]   its RGB colours                              only with per_frame=True
    goal/points        float32 [N,3]   the episode's final scene (the observation after its last action)
    goal/colors        uint8   [N,3]

The goal cloud is known only at the end, so the episode is buffered here and handed to the recorder in
one go (which then appends it atomically, as it does for any episode); it is repeated on every frame so
window samplers and goal-conditioned policies read it like any other frame feature. Create the store
with `pointcloud_features(num_points, per_frame)` merged into its features.

    feats = {**features_from_spaces(env.observation_space, env.action_space), **pointcloud_features(1024)}
    store = EpisodeStore.create(out, feats, fps=10)
    cams = fixed_cameras(env, ["static"])                      # or live_cameras(env, [...]) for one env
    rec = PointCloudRecorder(EpisodeRecorder(store), PointCloudPipeline(cfg), cams)
    run_episode(env, make_expert("pick"), seed=0, observers=[rec])
    goal = read_goal_cloud(EpisodeStore.open(out), 0)          # Cloud of episode 0's final scene
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from vla.pointcloud.geometry import CameraModel
from vla.pointcloud.pipeline import Cloud, PointCloudPipeline, frames_from_obs
from vla.types import FeatureSpec, FeatureType

POINTS_KEY, COLORS_KEY = "pointcloud/points", "pointcloud/colors"
GOAL_POINTS_KEY, GOAL_COLORS_KEY = "goal/points", "goal/colors"

CameraSource = Mapping[str, CameraModel] | Callable[[], Mapping[str, CameraModel]]


def pointcloud_features(num_points: int, per_frame: bool = False) -> dict[str, FeatureSpec]:
    """Store features for the goal cloud (always) and the per-frame cloud (`per_frame`)."""
    xyz = FeatureSpec(
        FeatureType.POINT_CLOUD, (int(num_points), 3), "float32", ("x", "y", "z"), {"frame": "base"}
    )
    rgb = FeatureSpec(FeatureType.POINT_CLOUD, (int(num_points), 3), "uint8", ("r", "g", "b"))
    feats = {GOAL_POINTS_KEY: xyz, GOAL_COLORS_KEY: rgb}
    if per_frame:
        feats.update({POINTS_KEY: xyz, COLORS_KEY: rgb})
    return feats


def fixed_cameras(env: Any, cameras: Sequence[str]) -> dict[str, CameraModel]:
    """Camera models of static cameras, read once from the env (safe for vector envs: poses never move)."""
    from sim.camera import DEFAULT_CAMERAS

    moving = [c for c in cameras if c in DEFAULT_CAMERAS and DEFAULT_CAMERAS[c].mounted_on_hand]
    if moving:
        raise ValueError(f"fixed_cameras: {moving} move with the hand; use live_cameras(env, ...) for them")
    return {c: CameraModel.from_env(env, c) for c in cameras}


def live_cameras(env: Any, cameras: Sequence[str]) -> Callable[[], dict[str, CameraModel]]:
    """A camera source that reads every camera's pose now (wrist cameras included; one env only)."""
    return lambda: {c: CameraModel.from_env(env, c) for c in cameras}


def read_goal_cloud(store: Any, episode: int) -> Cloud:
    """The goal cloud of `episode` from a store written with `pointcloud_features`."""
    for key in (GOAL_POINTS_KEY, GOAL_COLORS_KEY):
        if key not in store.features:
            raise KeyError(f"{store.path}: no {key!r}; was it recorded with PointCloudRecorder?")
    start = store.episode_slice(episode).start
    pts = store.read(GOAL_POINTS_KEY, start, start + 1)[0]
    return Cloud(pts, store.read(GOAL_COLORS_KEY, start, start + 1)[0], len(np.unique(pts, axis=0)))


class PointCloudRecorder:
    """Observer: buffers an episode, computes its clouds, then feeds `recorder` the augmented frames."""

    def __init__(
        self,
        recorder: Any,
        pipeline: PointCloudPipeline,
        cameras: CameraSource,
        per_frame: bool = False,
        drop_ids: Sequence[int] = (),
    ) -> None:
        feats = getattr(getattr(recorder, "store", None), "features", None)
        want = pointcloud_features(pipeline.cfg.num_points, per_frame)
        if feats is not None:
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
        self.recorder, self.pipeline, self.cameras, self.per_frame = recorder, pipeline, cameras, per_frame
        self.drop_ids = tuple(int(i) for i in drop_ids)  # segmentation ids to leave out (e.g. the robot)
        self._start: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._steps: list[tuple] = []
        self._goal: Cloud | None = None
        self._seed = 0

    def _cloud(self, obs: Mapping[str, Any], t: int) -> Cloud:
        cams = self.cameras() if callable(self.cameras) else self.cameras
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
        self._steps, self._goal = [], None
        self._start = (self._with_frame_cloud(obs, 0), dict(info))

    def on_step(self, obs, action, reward, terminated, truncated, info) -> None:
        frame = self._with_frame_cloud(obs, len(self._steps)) if self._steps else self._start[0]
        self._steps.append((frame, np.array(action, copy=True), reward, terminated, truncated, info))

    def on_final_observation(self, obs: Mapping[str, Any]) -> None:
        self._goal = self._cloud(obs, 99_999)

    def on_episode_end(self, result: Any) -> None:
        start, steps, goal = self._start, self._steps, self._goal
        self._start, self._steps, self._goal = None, [], None
        if start is None or goal is None:  # the episode failed before any frame or final observation
            if start is not None and result.error is None:
                raise ValueError("PointCloudRecorder: no final observation arrived; use vla.eval.rollout")
            self.recorder.on_episode_end(result)  # counted as seen (and dropped) by the recorder
            return
        extra = {GOAL_POINTS_KEY: goal.points, GOAL_COLORS_KEY: goal.colors}
        self.recorder.on_episode_start({**start[0], **extra}, start[1])
        for frame, action, reward, term, trunc, info in steps:
            self.recorder.on_step({**frame, **extra}, action, reward, term, trunc, info)
        self.recorder.on_episode_end(result)

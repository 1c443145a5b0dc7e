"""Point clouds as VLA model inputs: checks, workspace normalisation, and the observation cloud from depth.

The VLA processor (vla/processor.py) delegates its 3D inputs here. Two clouds can enter the model, each
switched on by its point count in `PointInputConfig` (saved in processor.json with the checkpoint):
    observation cloud  `pointcloud/points` float32 [N,3] + `pointcloud/colors`   (obs_points = N)
    goal cloud         `goal/points`       float32 [N,3] + `goal/colors`         (goal_points = N)

xyz are metres in the robot base frame; colours are uint8 [N,3] (0..255) or float [N,3] in [0, 1]. A
sample may carry a history axis ([T,N,3], window samples of per-frame features): the last frame is used.
Both become model tensors [B,N,C] with xyz mapped to (xyz - point_center) / point_scale (a fixed workspace
box, not per-cloud statistics, so a moved object stays moved) and, with `point_colors`, rgb in [0, 1]
appended (C = 6; else C = 3). A missing cloud, a wrong N or non-finite points is a ValueError naming the
key and the expected shape.

When an observation (a live env or robot) has depth but no `pointcloud/points`, the observation cloud is
built from `depth/<cam>` + `images/<cam>` by a `PointCloudPipeline` with the fixed, calibrated camera
models saved at training time (`point_cameras`, `point_pipeline`): the same pipeline the store's
per-frame clouds came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sim.tasks import get_task
from vla.pointcloud.episode_clouds import EpisodeClouds, has_episode_clouds
from vla.pointcloud.geometry import CameraModel
from vla.pointcloud.pipeline import PointCloudConfig, PointCloudPipeline, frames_from_obs

POINTS_KEY, COLORS_KEY = "pointcloud/points", "pointcloud/colors"
GOAL_POINTS_KEY, GOAL_COLORS_KEY = "goal/points", "goal/colors"
DEFAULT_CENTER = (0.5, 0.0, 0.05)  # metres, base frame: the middle of the table-top work region
DEFAULT_SCALE = 0.25  # metres: the work region spans about +-1 after normalisation


@dataclass
class PointInputConfig:
    """Which clouds the model reads and how they are normalised (a part of ProcessorConfig)."""

    obs_points: int = 0  # N of the observation cloud; 0 = no observation-cloud tokens
    goal_points: int = 0  # N of the goal cloud; 0 = no goal-cloud tokens
    point_colors: bool = True  # encoder input xyz + rgb (6 features) or xyz only (3)
    point_center: list[float] = field(default_factory=lambda: list(DEFAULT_CENTER))
    point_scale: float = DEFAULT_SCALE
    point_pipeline: dict[str, Any] = field(default_factory=dict)  # PointCloudConfig fields
    point_cameras: list[dict[str, Any]] = field(default_factory=list)  # camera_to_dict() of fixed cameras

    @property
    def in_features(self) -> int:
        return 6 if self.point_colors else 3


def camera_to_dict(camera: Any) -> dict[str, Any]:
    """A CameraModel as JSON-able data (K [3,3], width, height, base_T_cam [4,4], name)."""
    return {
        "name": camera.name,
        "K": np.asarray(camera.K).tolist(),
        "width": int(camera.width),
        "height": int(camera.height),
        "base_T_cam": np.asarray(camera.base_T_cam).tolist(),
    }


def camera_from_dict(data: Mapping[str, Any]) -> Any:
    try:
        return CameraModel(data["K"], data["width"], data["height"], data["base_T_cam"], data["name"])
    except KeyError as e:
        raise ValueError(f"point_cameras entry lacks {e}; expected name, K, width, height, base_T_cam") from e


def _last_frame(x: np.ndarray, n: int, key: str, where: str) -> np.ndarray:
    """[N,3] or [T,N,3] (history: the last frame) -> [N,3]; a clear error for any other shape."""
    if x.ndim == 3:
        x = x[-1]
    if x.ndim != 2 or x.shape != (n, 3):
        raise ValueError(
            f"processor ({where}): {key} must be [N={n}, 3] (or [T, {n}, 3]), got {tuple(np.shape(x))}"
        )
    return x


class PointInputs:
    """Builds the model's point tensors from samples or observations (see the module docstring)."""

    def __init__(self, cfg: PointInputConfig) -> None:
        if cfg.obs_points < 0 or cfg.goal_points < 0:
            raise ValueError(f"processor: obs_points/goal_points must be >= 0, got {cfg}")
        center = np.asarray(cfg.point_center, dtype=np.float32)
        if center.shape != (3,) or not cfg.point_scale > 0:
            raise ValueError(
                f"processor: point_center must be 3 numbers and point_scale > 0, got "
                f"{cfg.point_center}, {cfg.point_scale}"
            )
        self.cfg, self.center, self.scale = cfg, center, float(cfg.point_scale)
        self._pipeline: Any = None
        self._cameras: dict[str, Any] | None = None

    @property
    def enabled(self) -> bool:
        return self.cfg.obs_points > 0 or self.cfg.goal_points > 0

    def features(self, points: np.ndarray, colors: np.ndarray | None, key: str, where: str) -> np.ndarray:
        """One cloud -> [N,C] float32: normalised xyz (+ rgb in [0, 1])."""
        n = self.cfg.goal_points if key == GOAL_POINTS_KEY else self.cfg.obs_points
        pts = _last_frame(np.asarray(points), n, key, where).astype(np.float32)
        if not np.all(np.isfinite(pts)):
            raise ValueError(f"processor ({where}): {key} has non-finite points")
        xyz = (pts - self.center) / self.scale  # [N,3]
        if not self.cfg.point_colors:
            return xyz
        ckey = GOAL_COLORS_KEY if key == GOAL_POINTS_KEY else COLORS_KEY
        if colors is None:
            raise ValueError(f"processor ({where}): missing {ckey!r} [N={n}, 3] (the model uses colours)")
        col = _last_frame(np.asarray(colors), n, ckey, where)
        rgb = col.astype(np.float32) / 255.0 if col.dtype == np.uint8 else col.astype(np.float32)
        if rgb.size and (rgb.min() < 0.0 or rgb.max() > 1.0):
            raise ValueError(f"processor ({where}): {ckey} must be uint8 or floats in [0, 1]")
        return np.concatenate([xyz, rgb], axis=1)  # [N,6]

    def _cloud_of(self, d: Mapping[str, Any], key: str, where: str) -> np.ndarray:
        ckey = GOAL_COLORS_KEY if key == GOAL_POINTS_KEY else COLORS_KEY
        if key not in d:
            if key == GOAL_POINTS_KEY:
                raise ValueError(
                    f"processor ({where}): the model is goal-conditioned but there is no {key!r} "
                    f"[N={self.cfg.goal_points}, 3] (a goal task, a store with episode goal clouds, or an "
                    "imagined goal); have " + str(sorted(d))
                )
            raise ValueError(f"processor ({where}): missing {key!r}; have {sorted(d)}")
        return self.features(np.asarray(d[key]), d.get(ckey), key, where)

    def batch(self, samples: Sequence[Mapping[str, Any]], where: str) -> dict[str, torch.Tensor]:
        """Window samples (or prepared observations) -> {"points": [B,N,C], "goal_points": [B,N',C]}."""
        out: dict[str, torch.Tensor] = {}
        for name, key, n in (
            ("points", POINTS_KEY, self.cfg.obs_points),
            ("goal_points", GOAL_POINTS_KEY, self.cfg.goal_points),
        ):
            if n > 0:
                out[name] = torch.from_numpy(np.stack([self._cloud_of(s, key, where) for s in samples]))
        return out

    # ---- the observation cloud of a live observation ------------------------------------------------
    def observation_cloud(self, obs: Mapping[str, Any], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """points [N,3], colors [N,3] uint8 of an env/robot observation: its own `pointcloud/points`, or
        the pipeline over its depth images with the saved camera models."""
        if POINTS_KEY in obs:
            return np.asarray(obs[POINTS_KEY]), np.asarray(obs.get(COLORS_KEY))
        if not self.cfg.point_cameras:
            raise ValueError(
                f"processor: the observation has no {POINTS_KEY!r} and the checkpoint saved no camera "
                "models (point_cameras) to build it from depth"
            )
        if self._pipeline is None:
            pcfg = PointCloudConfig(**{**self.cfg.point_pipeline, "num_points": self.cfg.obs_points})
            self._pipeline = PointCloudPipeline(pcfg)
            self._cameras = {c["name"]: camera_from_dict(c) for c in self.cfg.point_cameras}

        cloud = self._pipeline.process(frames_from_obs(obs, self._cameras), seed=seed)
        return cloud.points, cloud.colors

    def with_observation_cloud(self, obs: Mapping[str, Any], seed: int = 0) -> dict[str, Any]:
        """A shallow copy of `obs` holding the observation cloud (computed if needed), never mutating."""
        if self.cfg.obs_points <= 0 or POINTS_KEY in obs:
            return dict(obs)
        pts, cols = self.observation_cloud(obs, seed)
        return {**obs, POINTS_KEY: pts, COLORS_KEY: cols}

    def required_env(self) -> dict[str, Any]:
        """What an env must provide: {"goal": bool, "depth_cameras": [names]} (for checks before eval)."""
        cams = [c["name"] for c in self.cfg.point_cameras] if self.cfg.obs_points > 0 else []
        return {"goal": self.cfg.goal_points > 0, "goal_points": self.cfg.goal_points, "depth_cameras": cams}


@dataclass
class PointTrainingSetup:
    """What `vla train` needs for the clouds a model config enables (see `point_training_setup`)."""

    processor_fields: dict[str, Any]  # PointInputConfig fields for ProcessorConfig
    obs_keys: list[str]  # extra window keys (the per-frame cloud)
    goal_source: str | None  # WindowSpec.goal_cloud


def point_training_setup(model_cfg: Any, store: Any) -> PointTrainingSetup:
    """Processor fields and window keys for the point encoders enabled in `model_cfg` (a VLMConfig):
    `points.num_groups > 0` reads the store's per-frame cloud, `goal_points.num_groups > 0` its episode goal
    clouds; N comes from the store; colours are used when the enabled encoders have in_features 6.
    A store without the clouds the model needs is a ValueError naming the store and the fix."""
    obs_on, goal_on = model_cfg.points.num_groups > 0, model_cfg.goal_points.num_groups > 0
    if not (obs_on or goal_on):
        return PointTrainingSetup({}, [], None)
    feats = [e.in_features for e, on in ((model_cfg.points, obs_on), (model_cfg.goal_points, goal_on)) if on]
    if any(f not in (3, 6) for f in feats) or len(set(feats)) > 1:
        raise ValueError(
            f"model points/goal_points in_features must both be 3 (xyz) or 6 (xyz + rgb), got {feats}"
        )
    fields: dict[str, Any] = {"point_colors": feats[0] == 6}
    keys: list[str] = []
    meta = dict(store.meta.get("pointcloud") or {})
    if obs_on:
        if POINTS_KEY not in store.features:
            raise ValueError(
                f"{store.path}: model.points.num_groups > 0 needs per-frame clouds ({POINTS_KEY!r}); collect "
                "with env.depth=true per_frame_clouds=true"
            )
        pipe = dict(meta.get("config") or {})
        pipe.pop("num_points", None)
        fields.update(
            obs_points=int(store.features[POINTS_KEY].shape[0]),
            point_pipeline=pipe,
            point_cameras=list(meta.get("cameras") or []),
        )
        keys = [POINTS_KEY, COLORS_KEY]
    if goal_on:
        if has_episode_clouds(store.path) and store.num_episodes > 0:
            n = int(EpisodeClouds.open(store).goal(0)[0].shape[0])
        elif GOAL_POINTS_KEY in store.features:
            n = int(store.features[GOAL_POINTS_KEY].shape[0])
        else:
            raise ValueError(
                f"{store.path}: model.goal_points.num_groups > 0 needs episode goal clouds; collect a goal "
                "task (task=arrange) or record final-scene clouds (env.depth=true record_clouds=true)"
            )
        fields["goal_points"] = n
    return PointTrainingSetup(fields, keys, "auto" if goal_on else None)


def check_env_provides_clouds(
    processor_cfg: Mapping[str, Any],
    env_cfg: Mapping[str, Any],
    tasks: Sequence[str],
    goal_given: bool = False,
) -> None:
    """Before the first episode: the env (`env` config as a dict) renders what the checkpoint's clouds
    need. Goal clouds: every task must be goal-specified (Task.has_goal_cloud) with env.goal_points = N,
    unless `goal_given` (an imagination wrapper supplies the goal). Observation clouds: env.depth=true,
    the saved cameras rendered, at the image size they were calibrated for. ValueError naming the fix."""

    cfg = PointInputConfig(
        **{k: processor_cfg[k] for k in PointInputConfig.__dataclass_fields__ if k in processor_cfg}
    )
    problems = []
    if cfg.goal_points > 0 and not goal_given:
        plain = [t for t in tasks if not get_task(t).has_goal_cloud]
        if plain:
            problems.append(
                f"the checkpoint is goal-conditioned but tasks {plain} give no goal cloud (use a goal task, "
                "e.g. arrange, stack_goal, or policy=goal_imagination)"
            )
        if int(env_cfg.get("goal_points", 1024)) != cfg.goal_points:
            problems.append(f"it reads {cfg.goal_points} goal points: set env.goal_points={cfg.goal_points}")
    if cfg.obs_points > 0:
        if not env_cfg.get("depth", False):
            problems.append("its observation cloud needs depth: set env.depth=true")
        for cam in cfg.point_cameras:
            if cam["name"] not in list(env_cfg.get("cameras", [])):
                problems.append(f"its observation cloud needs camera {cam['name']!r} in env.cameras")
            elif int(env_cfg.get("image_size", cam["width"])) != int(cam["width"]):
                problems.append(
                    f"camera {cam['name']!r} was calibrated at {cam['width']} px: "
                    f"set env.image_size={cam['width']}"
                )
    if problems:
        raise ValueError("checkpoint and env do not fit: " + "; ".join(problems))

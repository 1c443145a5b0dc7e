"""The full 3D-VLA loop: instruction -> imagined goal cloud -> goal-conditioned VLA -> actions.

`GoalImaginationPolicy` wraps a goal-conditioned policy (a VLA checkpoint trained with
`model.goal_points`, see docs/pointclouds.md). At the first step of an episode it builds the initial
point cloud from the observation's depth images (the `PointCloudPipeline` the goal model was trained
with, and the cameras' models), samples a goal cloud from a goal-diffusion checkpoint given that cloud and
the instruction, and then feeds it to the wrapped policy as `goal/points` [N,3] float32 + `goal/colors`
[N,3] uint8 on every step of the episode (replacing any goal the env provides: the policy acts on what
was imagined). Colours of the imagined points: the model's own (use_color), else those of the initial
points they were displaced from (displacement models keep the correspondence), else the nearest
initial point's colour.

    policy = make_policy("goal_imagination", checkpoint="outputs/train/goal", goal_checkpoint="outputs/gd")
    vla eval policy=goal_imagination +policy_kwargs.checkpoint=RUN +policy_kwargs.goal_checkpoint=GD ...

Camera models come from `cameras` (name -> CameraModel, e.g. a calibrated robot camera), else from the
simulator's fixed camera specs at the observation's image size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from policies.vla import make_vla_policy
from sim import camera as cam
from vla.core.types import GOAL_COLORS_KEY, GOAL_POINTS_KEY, INSTRUCTION_KEY, depth_key
from vla.models.checkpoint import GOAL_DIFFUSION_TYPE, VLA_TYPE, Checkpoint
from vla.models.goal_diffusion import GoalDiffusion
from vla.pointcloud.geometry import CameraModel
from vla.pointcloud.pipeline import PointCloudConfig, PointCloudPipeline, frames_from_obs


def sim_camera_models(names: list[str], width: int, height: int) -> dict[str, Any]:
    """CameraModels of the simulator's fixed cameras at an image size (hand cameras move: an error)."""

    out = {}
    for n in names:
        if n not in cam.DEFAULT_CAMERAS:
            raise ValueError(
                f"goal imagination: unknown camera {n!r}; expected one of {list(cam.DEFAULT_CAMERAS)}"
            )
        spec = cam.DEFAULT_CAMERAS[n]
        if spec.mounted_on_hand:
            raise ValueError(
                f"goal imagination: camera {n!r} moves with the hand; pass its model in cameras="
            )
        K = cam.intrinsics(spec.fov_deg, width, height)
        out[n] = CameraModel(K, width, height, cam.look_at_extrinsics(spec.eye, spec.target, spec.up), n)
    return out


class GoalImaginationPolicy:
    """Imagines the goal once per episode and hands it to `policy` with every observation."""

    def __init__(
        self,
        policy: Any,
        goal_model: Any,
        pipeline: Any,
        cameras: Mapping[str, Any] | None = None,
        steps: int = 50,
        seed: int = 0,
        strength: float = 1.0,
        snap: float = 0.0,
    ) -> None:
        self.policy, self.goal_model, self.pipeline = policy, goal_model, pipeline
        self.cameras = dict(cameras) if cameras is not None else None
        self.steps, self.seed, self.strength, self.snap = int(steps), int(seed), float(strength), float(snap)
        self.imagined: tuple[np.ndarray, np.ndarray] | None = None  # this episode's goal (points, colors)
        self.initial: Any = None  # this episode's initial Cloud
        self._episode_seed = self.seed

    def reset(self, seed: int | None = None) -> None:
        self.imagined, self.initial = None, None
        self._episode_seed = self.seed if seed is None else int(seed)
        self.policy.reset(seed)

    def _cameras_for(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        if self.cameras is not None:
            return self.cameras
        names = list(self.pipeline.cfg.cameras)
        missing = [depth_key(n) for n in names if depth_key(n) not in obs]
        if missing:
            raise ValueError(
                f"goal imagination: the observation lacks {missing} (the initial cloud needs depth: "
                f"env.depth=true and env.cameras including {names})"
            )
        h, w = np.asarray(obs[depth_key(names[0])]).shape[:2]
        return sim_camera_models(names, w, h)

    def imagine(self, obs: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """The goal cloud for this observation and its instruction: points [N,3] float32, colors uint8."""
        import torch

        instruction = obs.get(INSTRUCTION_KEY)
        if not isinstance(instruction, str):
            raise ValueError(f"goal imagination: the observation has no {INSTRUCTION_KEY!r} string")
        cloud = self.pipeline.process(frames_from_obs(obs, self._cameras_for(obs)), seed=self._episode_seed)
        self.initial = cloud
        model = self.goal_model
        x = cloud.features() if model.cfg.use_color else cloud.points  # [N,C]
        dev = next(model.parameters()).device
        with torch.no_grad():
            out = (
                model.sample(
                    torch.from_numpy(np.ascontiguousarray(x, np.float32))[None].to(dev),
                    [instruction],
                    steps=self.steps,
                    seed=self._episode_seed,
                    strength=self.strength,
                    snap=self.snap,
                )[0]
                .cpu()
                .numpy()
            )  # [N,C]
        pts = out[:, :3].astype(np.float32)
        if model.cfg.use_color:
            cols = np.clip(np.rint(out[:, 3:6] * 255), 0, 255).astype(np.uint8)
        elif getattr(model.cfg, "prediction", "") == "displacement":
            cols = cloud.colors.copy()  # point i is initial point i, displaced
        else:
            nearest = torch.cdist(torch.from_numpy(pts), torch.from_numpy(cloud.points)).argmin(dim=1)
            cols = cloud.colors[nearest.numpy()]
        return pts, cols

    def select_action(self, obs: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> np.ndarray:
        if self.imagined is None:
            self.imagined = self.imagine(obs)
        pts, cols = self.imagined
        return self.policy.select_action({**obs, GOAL_POINTS_KEY: pts, GOAL_COLORS_KEY: cols}, info)


def make_goal_imagination_policy(
    checkpoint: str,
    goal_checkpoint: str,
    sample_steps: int = 50,
    strength: float = 1.0,
    snap: float = 0.0,
    seed: int = 0,
    execute_steps: int = 0,
    device: str = "cpu",
) -> GoalImaginationPolicy:
    """Registry entry: a goal-conditioned VLA checkpoint (run dir or checkpoint dir) + a goal-diffusion
    checkpoint (`vla goals train`, or the goal benchmark); their goal cloud sizes must agree."""
    ck = Checkpoint.open(checkpoint, model_type=VLA_TYPE)
    path = ck.path
    n_goal = int((ck.section("vla").get("processor") or {}).get("goal_points", 0))
    if n_goal <= 0:
        raise ValueError(f"checkpoint {path} is not goal-conditioned (train it with model.goal_points...)")
    goal_ck = Checkpoint.open(goal_checkpoint, model_type=GOAL_DIFFUSION_TYPE)
    goal_model = GoalDiffusion.from_checkpoint(goal_ck).to(device)
    if goal_model.cfg.num_points != n_goal:
        raise ValueError(
            f"goal model {goal_ck.path} samples {goal_model.cfg.num_points} points, but checkpoint {path} "
            f"reads goal clouds of {n_goal} points"
        )
    pcfg = dict(goal_ck.section("goals").get("pointcloud") or {})
    pipeline = PointCloudPipeline(PointCloudConfig(**{**pcfg, "num_points": goal_model.cfg.num_points}))
    inner = make_vla_policy(str(path), execute_steps=execute_steps, device=device)
    return GoalImaginationPolicy(
        inner, goal_model, pipeline, steps=sample_steps, seed=seed, strength=strength, snap=snap
    )

"""`TabletopEnv`: the gymnasium environment behind "vla/Tabletop-v0" (Franka Panda, table-top tasks).

Each env owns one PyBullet DIRECT client (so `AsyncVectorEnv` sub-processes never share state). `reset(seed)`
rebuilds the world from scratch (robot, table, the seed's objects and fixtures), so a seed fully determines
the episode. `step(action)` runs one 10 Hz control step = 24 physics steps at 240 Hz. Observations follow
`vla.core.types`: `images/<cam>` uint8 [H,W,3], `depth/<cam>` float32 [H,W] metres, optional
`seg/<cam>` int32, `state` float32 [15] (packed by `vla.core.state.pack_state` in sim/robot.py),
`instruction` str, and for goal-specified tasks (sim.goal_tasks) `goal/points` float32
[N,3] + `goal/colors` uint8 [N,3], the goal scene rendered once at reset (sim.goal_cloud). `info` carries
`is_success`, `task`, `seed`, `split`, `instruction`, `privileged` (plain numpy/python values for experts)
and `error` after a physics blow-up. `reset(seed=s, options={"swap_instruction": True})` builds the
seed's scene with the task's swapped target or goal (`Task.swapped`, the language check): the observation,
`info` and `is_success` follow the new instruction, and `info` adds `original_instruction` and
`original_success`, the original instruction's success under the same `success_hold` rule, judged on the
same snapshot.

    env = gymnasium.make("vla/Tabletop-v0", task="pick", image_size=128)
    obs, info = env.reset(seed=0)
    obs, info = env.reset(seed=0, options={"swap_instruction": True})
    # info["original_instruction"]: "grab the yellow cylinder and raise it"
    # obs["instruction"]:           "grab the yellow block and raise it"
"""

from __future__ import annotations

import dataclasses
import pkgutil
import string
import warnings
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pybullet as p
import pybullet_data

from sim import camera as cam
from sim.goal_cloud import GOAL_WORKSPACE, GoalView, goal_pose_quat
from sim.goal_cloud import render_goal_cloud as _render_goal_cloud
from sim.robot import LOWER, ROBOT_VISUALS, UPPER, ControlLimits, Panda
from sim.scene import PALETTE, ShapeCache, build_fixture, build_object, build_table
from sim.tasks import (
    LIFT_HEIGHT,
    Layout,
    Snapshot,
    check_split,
    get_task,
    swap_rng_seed,
    task_rng_seed,
)
from vla.core.types import (
    CONTROL_HZ,
    GOAL_COLORS_KEY,
    GOAL_POINTS_KEY,
    PHYSICS_HZ,
    STATE_DIM,
    ActionSpace,
    colour_key,
    depth_key,
    image_key,
    seg_key,
)
from vla.core.types import (
    check_action as _check_action,
)

SUBSTEPS = PHYSICS_HZ // CONTROL_HZ
INSTRUCTION_CHARSET = string.ascii_letters + string.digits + " ,.'-?!"
WORKSPACE_BOUNDS = ((-0.2, -0.7, -0.1), (1.1, 0.7, 1.0))  # an object outside this box is an error
RENDERERS = ("tiny", "egl")
SWAP_INSTRUCTION = "swap_instruction"  # reset option: the seed's scene with the task's swapped instruction


def _load_egl(client: int) -> bool:
    """Load the EGL renderer plugin into `client`; True on success (must happen before any body)."""
    loader = pkgutil.get_loader("eglRenderer")
    if loader is None:
        return False
    plugin = p.loadPlugin(loader.get_filename(), "_eglRendererPlugin", physicsClientId=client)
    return plugin >= 0


class TabletopEnv(gym.Env):
    """Franka Panda table-top manipulation with language instructions. See the module docstring."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(
        self,
        task: str = "pick",
        split: str = "train",
        cameras: Sequence[str] = ("static", "wrist"),
        image_size: int = 128,
        depth: bool = True,
        segmentation: bool = False,
        colour_masks: bool = False,
        action_space: str = "ee_delta",
        max_episode_steps: int | None = None,
        renderer: str = "tiny",
        robot_visuals: str = "simple",
        render_mode: str | None = None,
        success_hold: int = 2,
        goal_points: int = 1024,
        goal_cameras: Sequence[str] | None = None,
        goal_image_size: int = 224,
        action_noise: float = 0.0,
    ):
        self.task = get_task(task)
        self.task_name = task
        self.split = check_split(split)
        cameras = (cameras,) if isinstance(cameras, str) else tuple(cameras)
        for c in cameras:
            if c not in cam.DEFAULT_CAMERAS:
                raise ValueError(f"unknown camera {c!r}; expected one of {list(cam.DEFAULT_CAMERAS)}")
        # cameras=() gives a state-only env (state + instruction): for expert benchmarks, no rendering.
        self.cameras = cameras
        if isinstance(image_size, (tuple, list)):
            h, w = (int(v) for v in image_size)
        else:
            h = w = int(image_size)
        if h < 8 or w < 8:
            raise ValueError(f"image_size: expected >= 8 pixels, got {image_size}")
        self.height, self.width = h, w
        self.use_depth, self.use_seg = bool(depth), bool(segmentation)
        # colours/<cam>: the palette index (1-based) of each pixel's body, from the segmentation render
        self.use_colours = bool(colour_masks)
        self._colour_lut = np.zeros(1, np.uint8)  # body id -> PALETTE index + 1 (0: unnamed)
        self.action_mode = ActionSpace.parse(action_space)
        # Actuation noise (DART recovery data, robustness checks): N(0, action_noise) metres on every
        # commanded EE translation and 5x that in radians on yaw, added after the policy chose the action,
        # so a recorder stores the commanded action as the label of the perturbed state that follows.
        if not float(action_noise) >= 0.0:
            raise ValueError(f"action_noise: expected >= 0 (metres), got {action_noise}")
        if action_noise and self.action_mode is not ActionSpace.EE_DELTA:
            raise ValueError(f"action_noise perturbs EE deltas: needs action_space=ee_delta, got {action_space}")
        self.action_noise = float(action_noise)
        self._noise_rng = np.random.default_rng(0)
        self.horizon = int(max_episode_steps or self.task.horizon)
        if robot_visuals not in ROBOT_VISUALS:
            known = list(ROBOT_VISUALS)
            raise ValueError(f"unknown robot_visuals {robot_visuals!r}; expected one of {known}")
        self.robot_visuals = robot_visuals
        if renderer not in RENDERERS:
            raise ValueError(f"unknown renderer {renderer!r}; expected one of {list(RENDERERS)}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode: expected None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.success_hold = int(success_hold)
        # Goal tasks: the goal cloud is rendered from `goal_cameras` (default: the observation cameras,
        # or the static camera for a state-only env) at goal_image_size, and sampled to goal_points.
        if goal_cameras is None:
            goal_cameras = cameras or ("static",)
        goal_cameras = (goal_cameras,) if isinstance(goal_cameras, str) else tuple(goal_cameras)
        for c in goal_cameras:
            if c not in cam.DEFAULT_CAMERAS:
                raise ValueError(f"unknown goal camera {c!r}; expected one of {list(cam.DEFAULT_CAMERAS)}")
        if not goal_cameras:
            raise ValueError("goal_cameras: expected at least one camera name (or null for the default)")
        if int(goal_points) < 1 or int(goal_image_size) < 8:
            raise ValueError(
                f"goal_points/goal_image_size: expected >= 1 / >= 8, got {goal_points}/{goal_image_size}"
            )
        self.goal_cameras, self.goal_points = goal_cameras, int(goal_points)
        self.goal_image_size = int(goal_image_size)
        self._goal_cloud: tuple[np.ndarray, np.ndarray] | None = None

        self.client = p.connect(p.DIRECT)
        self.renderer_name = "tiny"
        if renderer == "egl":
            if _load_egl(self.client):
                self.renderer_name = "egl"
            else:
                warnings.warn("EGL renderer plugin unavailable; using TinyRenderer", stacklevel=2)
        self._renderer = p.ER_BULLET_HARDWARE_OPENGL if self.renderer_name == "egl" else p.ER_TINY_RENDERER
        self._limits = ControlLimits()
        self.observation_space = self._make_obs_space()
        self.action_space = self._make_action_space()
        self.robot: Panda | None = None
        self.layout: Layout | None = None
        self.original_layout: Layout | None = None  # swapped episodes only: the seed's own layout
        self.object_ids: list[int] = []
        self.fixture_ids: list[int] = []
        self.table_id = -1
        self._base_state: int | None = None
        self._shapes = ShapeCache(self.client)
        self._seed = 0
        self._steps = 0
        self._held = 0
        self._original_held = 0

    # ---- spaces ----------------------------------------------------------------------------------
    def _make_obs_space(self) -> gym.spaces.Dict:
        H, W = self.height, self.width
        spaces: dict[str, gym.Space] = {}
        for c in self.cameras:
            spaces[image_key(c)] = gym.spaces.Box(0, 255, (H, W, 3), np.uint8)
            if self.use_depth:
                spaces[depth_key(c)] = gym.spaces.Box(0.0, cam.FAR, (H, W), np.float32)
            if self.use_seg:
                spaces[seg_key(c)] = gym.spaces.Box(-1, 2**24, (H, W), np.int32)
            if self.use_colours:
                spaces[colour_key(c)] = gym.spaces.Box(0, len(PALETTE), (H, W), np.uint8)
        spaces["state"] = gym.spaces.Box(-10.0, 10.0, (STATE_DIM,), np.float32)  # metres, radians
        spaces["instruction"] = gym.spaces.Text(max_length=256, min_length=1, charset=INSTRUCTION_CHARSET)
        if self.task.has_goal_cloud:
            lo, hi = (np.array(b, dtype=np.float32) for b in GOAL_WORKSPACE)
            n = self.goal_points
            spaces[GOAL_POINTS_KEY] = gym.spaces.Box(
                np.tile(lo, (n, 1)), np.tile(hi, (n, 1)), dtype=np.float32
            )
            spaces[GOAL_COLORS_KEY] = gym.spaces.Box(0, 255, (n, 3), np.uint8)
        return gym.spaces.Dict(spaces)

    def _make_action_space(self) -> gym.spaces.Box:
        if self.action_mode is ActionSpace.EE_DELTA:
            t, r = self._limits.max_translation, self._limits.max_rotation
            low = np.array([-t, -t, -t, -r, -r, -r, 0.0], dtype=np.float32)
            return gym.spaces.Box(low, np.array([t, t, t, r, r, r, 1.0], dtype=np.float32), dtype=np.float32)
        low = np.array([*LOWER, 0.0], dtype=np.float32)
        return gym.spaces.Box(low, np.array([*UPPER, 1.0], dtype=np.float32), dtype=np.float32)

    # ---- camera geometry -------------------------------------------------------------------------
    def _spec(self, name: str) -> cam.CameraSpec:
        if name not in cam.DEFAULT_CAMERAS:
            raise ValueError(f"unknown camera {name!r}; expected one of {list(cam.DEFAULT_CAMERAS)}")
        return cam.DEFAULT_CAMERAS[name]

    def camera_intrinsics(self, name: str) -> np.ndarray:
        """K [3,3] of camera `name` at this env's image size."""
        return cam.intrinsics(self._spec(name).fov_deg, self.width, self.height)

    def camera_extrinsics(self, name: str) -> np.ndarray:
        """world_T_cam [4,4] (OpenCV axes) of camera `name` now (the wrist camera moves with the hand)."""
        spec = self._spec(name)
        if spec.mounted_on_hand:
            if self.robot is None:
                raise RuntimeError("the wrist camera has no pose before the first reset()")
            return cam.hand_extrinsics(spec, *self.robot.hand_pose())
        return cam.look_at_extrinsics(spec.eye, spec.target, spec.up)

    # ---- episode -------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(0, 2**31 - 1))
        layout, original = self._layouts(int(seed), bool((options or {}).get(SWAP_INSTRUCTION, False)))
        self._seed = int(seed)
        self._noise_rng = np.random.default_rng([*task_rng_seed(self.task_name, self.split, self._seed), 1])
        self.layout, self.original_layout = layout, original
        self._build_world(self.layout)
        self._goal_cloud = self.render_goal_cloud() if self.task.has_goal_cloud else None
        self._steps, self._held, self._original_held = 0, 0, 0
        obs = self._observe()
        return obs, self._info(success=False)

    def _layouts(self, seed: int, swap: bool) -> tuple[Layout, Layout | None]:
        """(layout to build, the seed's original layout or None): with `swap`, the task's swapped layout
        (`sim.tasks.swapped_layout` derives the same pair); a ValueError where the scene has none."""
        layout = self.task.sample(
            np.random.default_rng(task_rng_seed(self.task_name, self.split, seed)), self.split
        )
        if not swap:
            return layout, None
        swapped = self.task.swapped(
            layout, np.random.default_rng(swap_rng_seed(self.task_name, self.split, seed))
        )
        if swapped is None:
            raise ValueError(
                f"reset option {SWAP_INSTRUCTION!r}: task {self.task_name!r} offers no other target or goal "
                f"in the scene of seed {seed} (split {self.split!r}); Task.swapped returned None"
            )
        return swapped, layout

    def _build_world(self, layout: Layout) -> None:
        """Robot and table are built once and restored from a saved state (loading the Panda URDF is the
        slowest part of a reset); the seed's objects and fixtures are rebuilt every episode."""
        c = self.client
        if self._base_state is None:
            p.resetSimulation(physicsClientId=c)
            p.setPhysicsEngineParameter(
                fixedTimeStep=1.0 / PHYSICS_HZ,
                numSolverIterations=60,
                deterministicOverlappingPairs=1,
                physicsClientId=c,
            )
            p.setGravity(0, 0, -9.81, physicsClientId=c)
            p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=c)
            self.table_id = build_table(c)
            self._shapes = ShapeCache(c)
            self.robot = Panda(c, self.robot_visuals, self._limits)
            self.robot.reset()
            self._base_state = p.saveState(physicsClientId=c)
        else:
            for uid in reversed(self.fixture_ids + self.object_ids):  # freed ids are reused last-in first
                p.removeBody(uid, physicsClientId=c)
            p.restoreState(stateId=self._base_state, physicsClientId=c)
            self.robot.reset()
        self.fixture_ids = [build_fixture(c, f, self._shapes) for f in layout.fixtures]
        self.object_ids = [build_object(c, o, self._shapes) for o in layout.objects]
        first, n = self.robot.uid + 1, len(layout.fixtures) + len(layout.objects)
        if self.fixture_ids + self.object_ids != list(range(first, first + n)):
            # Body ids must not depend on earlier episodes (they are in `info` and order the solver).
            self._base_state = None
            return self._build_world(layout)
        specs = [*layout.fixtures, *layout.objects]
        lut = np.zeros(first + n, np.uint8)
        for uid, spec in zip(self.fixture_ids + self.object_ids, specs):
            lut[uid] = PALETTE.index(spec.colour) + 1 if spec.colour in PALETTE else 0
        self._colour_lut = lut
        for _ in range(10):  # let objects settle on the table
            p.stepSimulation(physicsClientId=c)

    def render_goal_cloud(self) -> tuple[np.ndarray, np.ndarray]:
        """The goal scene (objects at `layout.goal_poses`) as points [N,3] float32 and colours [N,3] uint8."""
        views = [GoalView(c, self.camera_extrinsics(c), self._spec(c).fov_deg) for c in self.goal_cameras]
        size = self.goal_image_size
        ids = self.object_ids
        return _render_goal_cloud(
            self.client,
            ids,
            self.layout.goal_poses,
            ids + self.fixture_ids,
            views,
            size,
            size,
            self._renderer,
            self.goal_points,
            self._seed,
        )

    def step(self, action):
        if self.robot is None or self.layout is None:
            raise RuntimeError("step() called before reset()")
        a = _check_action(action, self.action_mode.dim)
        a = np.clip(a, self.action_space.low, self.action_space.high)
        if self.action_noise > 0:  # never mutates the caller's action: _check_action/clip return copies
            a[:3] += self._noise_rng.normal(0.0, self.action_noise, 3)
            a[5] += self._noise_rng.normal(0.0, 5 * self.action_noise)
            a = np.clip(a, self.action_space.low, self.action_space.high)
        if self.action_mode is ActionSpace.EE_DELTA:
            self.robot.apply_ee_delta(a[:6], float(a[6]))
        else:
            self.robot.apply_joint_targets(a[:7], float(a[7]))
        for _ in range(SUBSTEPS):
            p.stepSimulation(physicsClientId=self.client)
        self._steps += 1
        error = self._check_blowup()
        success = False
        if error is None:
            snap = self.snapshot()
            self._held = self._held + 1 if self.task.success(snap) else 0
            success = self._held >= self.success_hold
            if self.original_layout is not None:
                was = self.task.success(dataclasses.replace(snap, layout=self.original_layout))
                self._original_held = self._original_held + 1 if was else 0
        terminated = success or error is not None
        truncated = not terminated and self._steps >= self.horizon
        obs = self._observe()
        info = self._info(success=success)
        if error is not None:
            info["error"] = error
        return obs, float(success), terminated, truncated, info

    def _check_blowup(self) -> str | None:
        low, high = np.array(WORKSPACE_BOUNDS[0]), np.array(WORKSPACE_BOUNDS[1])
        for uid, spec in zip(self.object_ids, self.layout.objects):
            pos, _ = p.getBasePositionAndOrientation(uid, physicsClientId=self.client)
            pos = np.asarray(pos)
            if not np.all(np.isfinite(pos)):
                return f"physics blow-up: non-finite pose of the {spec.name}"
            if np.any(pos < low) or np.any(pos > high):
                return f"object out of workspace: the {spec.name} at {np.round(pos, 3).tolist()}"
        if not np.all(np.isfinite(self.robot.joint_positions())):
            return "physics blow-up: non-finite robot joint positions"
        return None

    def snapshot(self) -> Snapshot:
        """The world state for success checks: object poses, robot contacts, fixture positions."""
        c = self.client
        poses = [p.getBasePositionAndOrientation(u, physicsClientId=c) for u in self.object_ids]
        touching = [
            len(p.getContactPoints(bodyA=self.robot.uid, bodyB=u, physicsClientId=c)) > 0
            for u in self.object_ids
        ]
        fixtures = [p.getBasePositionAndOrientation(u, physicsClientId=c)[0] for u in self.fixture_ids]
        return Snapshot(
            positions=np.array([q[0] for q in poses], dtype=np.float64).reshape(-1, 3),
            quats=np.array([q[1] for q in poses], dtype=np.float64).reshape(-1, 4),
            touching=np.array(touching, dtype=bool),
            fixture_positions=np.array(fixtures, dtype=np.float64).reshape(-1, 3),
            layout=self.layout,
        )

    # ---- observation / info --------------------------------------------------------------------
    def _observe(self) -> dict[str, Any]:
        obs: dict[str, Any] = {}
        for c in self.cameras:
            spec = self._spec(c)
            rgb, depth, seg = cam.render(
                self.client,
                self.camera_extrinsics(c),
                spec.fov_deg,
                self.width,
                self.height,
                self._renderer,
                self.use_seg or self.use_colours,
            )
            obs[image_key(c)] = rgb
            if self.use_depth:
                obs[depth_key(c)] = depth
            if self.use_seg:
                obs[seg_key(c)] = seg
            if self.use_colours:
                assert seg is not None
                ids = np.where((seg >= 0) & (seg < len(self._colour_lut)), seg, 0)
                obs[colour_key(c)] = self._colour_lut[ids]  # [H,W] uint8
        obs["state"] = self.robot.state()
        obs["instruction"] = self.layout.instruction
        if self._goal_cloud is not None:
            obs[GOAL_POINTS_KEY] = self._goal_cloud[0].copy()
            obs[GOAL_COLORS_KEY] = self._goal_cloud[1].copy()
        return obs

    def _info(self, success: bool) -> dict[str, Any]:
        info = {
            "is_success": bool(success),
            "task": self.task_name,
            "seed": self._seed,
            "split": self.split,
            "instruction": self.layout.instruction,
            "privileged": self.privileged(),
        }
        if self.original_layout is not None:  # a swapped episode (reset option SWAP_INSTRUCTION)
            info["original_instruction"] = self.original_layout.instruction
            info["original_success"] = bool(self._steps > 0 and self._original_held >= self.success_hold)
        return info

    def privileged(self) -> dict[str, Any]:
        """Plain numpy/python description of the world for experts (never for learned policies)."""
        lay, snap = self.layout, self.snapshot()
        ee_pos, ee_quat = self.robot.ee_pose()
        if lay.goal_kind == "fixture":
            goal = snap.fixture_positions[lay.goal_index].copy()
            goal_name = lay.fixtures[lay.goal_index].kind
        elif lay.goal_kind == "object":
            goal = snap.positions[lay.goal_index].copy()
            goal_name = "object"
        elif lay.goal_kind == "pose":
            goal = np.array(lay.goal_poses[lay.target][:3], dtype=np.float64)
            goal_name = "pose"
        else:
            goal = snap.positions[lay.target] + np.array([0.0, 0.0, LIFT_HEIGHT + 0.01])
            goal_name = "lift"
        # Per-object/per-fixture entries are python lists (their length varies by seed, and gymnasium's
        # vector envs batch only fixed-shape arrays); np.asarray(priv["object_poses"]) gives [K,7].
        extra: dict[str, Any] = {}
        if lay.goal_poses:  # goal tasks: per object xyz + quaternion xyzw, like object_poses
            extra["goal_poses"] = [np.concatenate(goal_pose_quat(g)) for g in lay.goal_poses]
        return {
            **extra,
            "object_names": [o.name for o in lay.objects],
            "object_shapes": [o.shape for o in lay.objects],
            "object_colours": [o.colour for o in lay.objects],
            "object_ids": [int(u) for u in self.object_ids],
            "object_sizes": [np.array(o.size, dtype=np.float64) for o in lay.objects],
            # pose = xyz + quaternion xyzw
            "object_poses": [np.concatenate([q, r]) for q, r in zip(snap.positions, snap.quats)],
            "object_touching": [bool(t) for t in snap.touching],
            "fixture_names": [f.name for f in lay.fixtures],
            "fixture_kinds": [f.kind for f in lay.fixtures],
            "fixture_positions": [q.copy() for q in snap.fixture_positions],
            "target_index": int(lay.target),
            "goal_kind": lay.goal_kind,
            "goal_name": goal_name,
            "goal_index": int(lay.goal_index),
            "goal_position": goal,
            "ee_position": ee_pos,
            "ee_quaternion": ee_quat,
            "gripper_width": self.robot.gripper_width(),
            "step": int(self._steps),
        }

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        name = "static"
        spec = self._spec(name)
        rgb, _, _ = cam.render(
            self.client,
            self.camera_extrinsics(name),
            spec.fov_deg,
            self.width,
            self.height,
            self._renderer,
            False,
        )
        return rgb

    def close(self):
        if getattr(self, "client", None) is not None and p.isConnected(self.client):
            p.disconnect(self.client)
        self.client = None

"""Scripted experts: one closed-loop phase machine per task, reading privileged state from `info`.

Each expert implements the Policy protocol (`reset`, `select_action(obs, info)`) and reads only the
`info["privileged"]` dict the env returns (object poses, sizes, goal position, EE pose), so it runs
unchanged through `AsyncVectorEnv`. Actions are 7-D EE deltas (vla.core.types.ACTION_NAMES). `noise` adds
Gaussian noise (metres; radians x5 for yaw) to the commanded motion for demonstration diversity, and a
small per-episode jitter of approach heights; a missed grasp or a drifting push re-plans from the start.

    expert = make_expert("pick", noise=0.003, seed=1)    # or make_policy("expert", task="pick")
    expert.reset(seed)
    action = expert.select_action(obs, info)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from sim.scene import YAW_SYMMETRY, fixture_top
from sim.tasks import get_task

MAX_STEP = 0.04  # metres per control step the experts command (the env clips at 0.05)
# Proportional control: each step covers GAIN of the remaining distance (capped at MAX_STEP), so an
# action is a smooth function of where the goal is, which a learned policy can imitate; a bang-bang
# expert (full steps until the goal is within one step) teaches only the direction until the last step.
GAIN = 0.5
# ... but never less than MIN_STEP vertically (or the whole remaining error, if smaller): a purely
# proportional label shrinks towards zero near every goal, and a policy that underestimates the height
# left converges short of it (session 7: place policies stopped 1.5 cm above the release height, where
# the expert's label was still -1.3 cm, and never opened). Horizontally the target is in view, and the
# label stays proportional: a smooth function of the offset the policy sees (docs/training.md).
MIN_STEP = 0.01
SAFE_Z = 0.16  # carrying height of the grasp point
OPEN, CLOSED = 1.0, 0.0
CLOSED_BELOW = 0.075  # gripper width (m; 0.08 open) under which the fingers have closed on something
OPENED_ABOVE = 0.075  # gripper width above which the fingers have opened again after a release
CLOSE_ABOVE = 0.012  # metres above the grasp (release) height from which the fingers close (open)


def _wrap(angle: float, period: float) -> float:
    """Wrap an angle into [-period/2, period/2)."""
    return (angle + period / 2) % period - period / 2


def _yaw(quat: np.ndarray) -> float:
    x, y, z, w = quat
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def _finger_yaw(ee_quat: np.ndarray) -> float:
    """Yaw (about world z) of the axis the fingers open along (the hand's y axis)."""
    x, y, z, w = ee_quat
    # second column of the rotation matrix
    r01 = 2 * (x * y - z * w)
    r11 = 1 - 2 * (x * x + z * z)
    return math.atan2(r11, r01)


class ScriptedExpert:
    """Base phase machine. Subclasses implement `_act(priv) -> (pos_goal [3], yaw_err, gripper)`."""

    task: str = ""
    quiet_phases: frozenset[str] = frozenset({"close", "release"})  # no noise while the gripper acts
    flat_phases: frozenset[str] = frozenset({"push"})  # no vertical noise (the pusher stays low)
    descend_drift: float = 0.02  # metres off the object (xy) while descending that restart the approach

    def __init__(self, noise: float = 0.0, seed: int = 0):
        if noise < 0:
            raise ValueError(f"noise: expected >= 0, got {noise}")
        self.noise, self._seed = float(noise), int(seed)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng([self._seed, 0 if seed is None else int(seed) & 0xFFFFFFFF])
        self.phase = "approach"
        self.phase_steps = 0
        self.attempts = 0
        self.hover = 0.10 + (float(self._rng.uniform(-0.02, 0.02)) if self.noise > 0 else 0.0)
        self.low_steps = 0  # carry experts: steps spent at the bottom of the funnel without releasing

    def select_action(self, obs: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> np.ndarray:
        if info is None or "privileged" not in info:
            raise ValueError("scripted expert: expected the env's info dict with a 'privileged' entry")
        priv = info["privileged"]
        goal, yaw_err, grip = self._act(priv)
        self.phase_steps += 1
        ee = np.asarray(priv["ee_position"], dtype=np.float64)
        err = np.asarray(goal, dtype=np.float64) - ee
        floor = np.minimum(np.array([0.0, 0.0, MIN_STEP]), np.abs(err))  # vertical only (see MIN_STEP)
        step = np.minimum(np.maximum(GAIN * np.abs(err), floor), MAX_STEP)
        delta = np.sign(err) * step
        dyaw = float(np.clip(yaw_err, -0.25, 0.25))
        if self.noise > 0 and self.phase not in self.quiet_phases:
            scale = np.array([1.0, 1.0, 0.0 if self.phase in self.flat_phases else 1.0])
            delta = delta + scale * self._rng.normal(0.0, self.noise, size=3)
            dyaw += float(self._rng.normal(0.0, self.noise * 5))
        return np.array([*delta, 0.0, 0.0, dyaw, grip], dtype=np.float32)

    def _set(self, phase: str) -> None:
        self.phase, self.phase_steps = phase, 0

    # ---- shared grasp logic ----------------------------------------------------------------------
    @staticmethod
    def _target(priv) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        i = int(priv["target_index"])
        pose = np.asarray(priv["object_poses"][i], dtype=np.float64)
        size = np.asarray(priv["object_sizes"][i], dtype=np.float64)
        return pose[:3], pose[3:], size, priv["object_shapes"][i]

    @staticmethod
    def _grasp_yaw_err(priv, obj_quat: np.ndarray, shape: str) -> float:
        period = YAW_SYMMETRY[shape]
        if period >= 2 * math.pi:
            return 0.0
        want = _yaw(obj_quat) + math.pi / 2  # close across the object's y (narrow) axis
        return _wrap(want - _finger_yaw(np.asarray(priv["ee_quaternion"])), period)

    def _grasp(self, priv) -> tuple[np.ndarray, float, float] | None:
        """Approach, descend, close, lift the target. None once it is held at the carry height."""
        pos, quat, size, shape = self._target(priv)
        ee = np.asarray(priv["ee_position"], dtype=np.float64)
        yaw_err = self._grasp_yaw_err(priv, quat, shape)
        grasp_z = max(pos[2] - 0.004, 0.014)
        if self.phase == "approach":
            goal = np.array([pos[0], pos[1], max(pos[2] + self.hover, 0.1)])
            if np.linalg.norm((goal - ee)[:2]) < 0.01 and abs(goal[2] - ee[2]) < 0.03 and abs(yaw_err) < 0.05:
                self._set("descend")
            return goal, yaw_err, OPEN
        if self.phase == "descend":
            goal = np.array([pos[0], pos[1], grasp_z])
            if np.linalg.norm((goal - ee)[:2]) > self.descend_drift:  # the object moved: start over
                self._set("approach")
                return goal, yaw_err, OPEN
            # Close from just above the grasp height, in the same step: the label of the frame that
            # reaches the bottom is "close" (a frame later, the policy would see two near-identical
            # frames, one labelled open and one closed, and learn to keep the fingers open).
            if ee[2] < grasp_z + CLOSE_ABOVE or self.phase_steps > 15:
                self._set("close")
                return self._grasp(priv)
            return goal, yaw_err, OPEN
        if self.phase == "close":
            # Lift as soon as the fingers have closed (observable: the gripper width in the state), not
            # after a hidden timer: a wait of k identical-looking frames teaches a policy to wait forever.
            closed = self.phase_steps >= 1 and float(priv["gripper_width"]) < CLOSED_BELOW
            if closed or self.phase_steps >= 4:
                self._set("lift")
                return self._grasp(priv)
            return np.array([pos[0], pos[1], grasp_z]), 0.0, CLOSED
        if self.phase == "lift":
            if not self._held(priv):
                self.attempts += 1
                self._set("approach")
                return self._grasp(priv)
            if ee[2] > SAFE_Z - 0.02:
                return None
            return np.array([ee[0], ee[1], SAFE_Z]), 0.0, CLOSED
        return None

    def _held(self, priv) -> bool:
        i = int(priv["target_index"])
        return float(priv["gripper_width"]) > 0.006 and bool(priv["object_touching"][i])

    def _act(self, priv) -> tuple[np.ndarray, float, float]:
        raise TypeError(f"{type(self).__name__} must define _act()")


class PickExpert(ScriptedExpert):
    task = "pick"

    def _act(self, priv):
        if self.phase == "hold":
            if not self._held(priv):
                self._set("approach")
            else:
                pos = np.asarray(priv["ee_position"])
                return np.array([pos[0], pos[1], SAFE_Z + 0.04]), 0.0, CLOSED
        out = self._grasp(priv)
        if out is None:
            self._set("hold")
            pos = np.asarray(priv["ee_position"])
            return np.array([pos[0], pos[1], SAFE_Z + 0.04]), 0.0, CLOSED
        return out


class _CarryExpert(ScriptedExpert):
    """Grasp, carry above a goal point, lower, release, retreat (place and stack).

    Carrying and lowering are one funnel, a function of where the object is (no hidden phase): at
    `lower_from` metres or more (xy) from the goal the hand stays at the carrying height; from there to
    `lower_to` it descends linearly to the release height, and it opens once the object is at that height
    within `release_within` of the goal. A learned policy that stops a centimetre off the goal still
    descends and releases; a separate "lower" phase that began only within 8 mm of the goal taught policies
    to hover over the goal forever (session 7, place: 12/12 training episodes carried the object there)."""

    lower_from: float = 0.05  # xy distance (m) of the object from the goal where the descent begins
    lower_to: float = 0.02  # ... and under which the hand goes all the way down to the release height
    release_within: float = 0.03  # xy distance under which the object is released at the release height

    def _goal_xy_z(self, priv) -> tuple[np.ndarray, float]:
        raise TypeError(f"{type(self).__name__} must define _goal_xy_z()")

    def _act(self, priv):
        ee = np.asarray(priv["ee_position"], dtype=np.float64)
        if self.phase in ("approach", "descend", "close", "lift"):
            out = self._grasp(priv)
            if out is not None:
                return out
            self._set("carry")
        pos, _, _, _ = self._target(priv)
        goal_xy, release_z = self._goal_xy_z(priv)
        offset = pos[:2] - ee[:2]  # where the object hangs relative to the grasp point
        ee_goal_xy = goal_xy - offset
        if self.phase == "carry" and not self._held(priv):
            self._set("approach")
            return self._grasp(priv)
        if self.phase == "carry":
            d = float(np.linalg.norm(pos[:2] - goal_xy))
            low = release_z + (ee[2] - pos[2])  # grasp point height that puts the object at release_z
            frac = float(np.clip((d - self.lower_to) / (self.lower_from - self.lower_to), 0.0, 1.0))
            # aim a centimetre below the release height, so the label still says "down" (MIN_STEP) when
            # the release comes, rather than shrinking to nothing just above it
            bottom = low - 0.01
            goal = np.array([*ee_goal_xy, bottom + frac * (max(SAFE_Z, low) - bottom)])
            near = d < self.release_within
            self.low_steps = self.low_steps + 1 if near and ee[2] < low + 0.03 else 0
            if near and (ee[2] < low + CLOSE_ABOVE or self.low_steps > 10):  # the timer: when blocked
                self._set("release")  # open in this very step, as "close" does
                return self._act(priv)
            return goal, 0.0, CLOSED
        if self.phase == "release":
            # retreat once the gripper width shows the fingers open again (observable, as in "close")
            opened = self.phase_steps >= 1 and float(priv["gripper_width"]) > OPENED_ABOVE
            if opened or self.phase_steps >= 3:
                self._set("retreat")
                return self._act(priv)
            return ee.copy(), 0.0, OPEN
        # retreat; if the object did not stay where it was put (it slid or toppled), start over
        if ee[2] > 0.1 and not self._placed(priv, pos, goal_xy):
            self._set("approach")
            return self._grasp(priv)
        return np.array([ee[0], ee[1], SAFE_Z]), 0.0, OPEN

    def _placed(self, priv, pos: np.ndarray, goal_xy: np.ndarray) -> bool:
        """Whether the released object rests at the goal (a looser check than the task's success)."""
        _, release_z = self._goal_xy_z(priv)
        return bool(np.linalg.norm(pos[:2] - goal_xy) < 0.04 and pos[2] > release_z - 0.03)


class PlaceExpert(_CarryExpert):
    task = "place"

    def _goal_xy_z(self, priv):
        g = int(priv["goal_index"])
        centre = np.asarray(priv["fixture_positions"][g], dtype=np.float64)
        _, _, size, _ = self._target(priv)
        return centre[:2], fixture_top(priv["fixture_kinds"][g]) + size[2] / 2 + 0.012


class StackExpert(_CarryExpert):
    task = "stack"
    lower_from, lower_to, release_within = 0.03, 0.006, 0.01  # a cube on a cube: success needs 2.5 cm

    def _goal_xy_z(self, priv):
        b = int(priv["goal_index"])
        base = np.asarray(priv["object_poses"][b][:3], dtype=np.float64)
        base_h = float(priv["object_sizes"][b][2])
        _, _, size, _ = self._target(priv)
        return base[:2], base[2] + base_h / 2 + size[2] / 2 + 0.008


class PushExpert(ScriptedExpert):
    """Go behind the object (closed gripper, low), push it along the line to the marker, re-plan on drift.

    Approach and descent are one funnel of the hand's xy distance to the point behind the object (no
    hidden phase, as `_CarryExpert`'s carry): from `lower_from` metres or more it stays at the approach
    height, from there to `lower_to` it descends linearly to the pushing height. Once the hand is low and
    on the line behind the object, it pushes. The old expert descended only after reaching within 1 cm of
    the point behind the object at the approach height, which taught policies a centimetre off to hover
    (session 8)."""

    task = "push"
    push_z = 0.018
    approach_z = 0.1
    tolerance = 0.01
    lower_from = 0.025  # xy distance (m) of the hand from the point behind the object where descent begins
    lower_to = 0.008  # ... and under which the hand goes all the way down to the pushing height

    def _act(self, priv):
        pos, _, size, _ = self._target(priv)
        ee = np.asarray(priv["ee_position"], dtype=np.float64)
        goal = np.asarray(priv["goal_position"], dtype=np.float64)
        to_goal = goal[:2] - pos[:2]
        dist = float(np.linalg.norm(to_goal))
        d = to_goal / max(dist, 1e-6)
        standoff = 0.5 * float(np.hypot(size[0], size[1])) + 0.015
        behind = pos[:2] - d * (standoff + 0.02)
        if dist < self.tolerance or self.phase == "done":
            if self.phase != "done":
                self._set("done")
            return np.array([ee[0], ee[1], 0.12]), 0.0, CLOSED
        rel = ee[:2] - pos[:2]
        lateral = abs(float(rel[0] * d[1] - rel[1] * d[0]))
        along = float(rel @ d)  # negative = behind the object
        on_line = lateral <= 0.02 and along <= -standoff + 0.03
        low = ee[2] < self.push_z + 0.008
        if self.phase == "lift_off":
            if ee[2] > 0.08:
                self._set("approach")
            else:
                return np.array([ee[0] - d[0] * 0.01, ee[1] - d[1] * 0.01, self.approach_z]), 0.0, CLOSED
        if low and on_line:  # push: advance along the line, steering back onto it
            self._set("push")
            lateral_vec = rel - along * d
            g = ee[:2] + d * min(0.018, dist + 0.005) - 0.7 * lateral_vec
            return np.array([*g, self.push_z]), 0.0, CLOSED
        if self.phase == "push" or (ee[2] < self.push_z + 0.02 and not on_line):
            # pushing and off the line (the object turned or slid away), or low beside it: lift and re-plan
            self._set("lift_off")
            return self._act(priv)
        # approach and descend: one funnel of the distance to the point behind the object
        far = float(np.linalg.norm(ee[:2] - behind))
        frac = float(np.clip((far - self.lower_to) / (self.lower_from - self.lower_to), 0.0, 1.0))
        return np.array([*behind, self.push_z + frac * (self.approach_z - self.push_z)]), 0.0, CLOSED


class _GoalExpert(_CarryExpert):
    """Goal tasks: carry one object at a time to its goal (privileged `goal_poses`), then choose the first
    object still off its goal (`_pending`, in the order they must be moved): an object that landed off
    its goal, or a tower that fell, is grasped and placed again."""

    # Near the robot base (x < 0.42 m) a noisy vertical descent swings the hand up to ~3.5 cm sideways
    # before it comes back over the object; restarting there loops until the horizon.
    descend_drift = 0.035
    lower_from, lower_to, release_within = 0.03, 0.006, 0.01  # goals are points, not fixtures

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.current = -1  # the object being moved; -1 before the first choice

    def _pending(self, priv) -> list[int]:
        raise TypeError(f"{type(self).__name__} must define _pending()")

    def _act(self, priv):
        ee = np.asarray(priv["ee_position"], dtype=np.float64)
        if self.current < 0 or self.phase in ("retreat", "done") and ee[2] > 0.1:
            pending = self._pending(priv)
            if not pending:
                self._set("done")
                return np.array([ee[0], ee[1], SAFE_Z]), 0.0, OPEN
            if self.phase in ("retreat", "done") or self.current < 0:
                self.current = pending[0]
                self._set("approach")
        return super()._act({**priv, "target_index": self.current})


class ArrangeExpert(_GoalExpert):
    task = "arrange"
    tolerance = 0.015  # tighter than the task's 3 cm, so a sloppy place is redone

    def _pending(self, priv):
        poses, goals = priv["object_poses"], priv["goal_poses"]
        return [
            i
            for i in range(len(goals))
            if np.linalg.norm(np.asarray(poses[i][:2]) - np.asarray(goals[i][:2])) > self.tolerance
        ]

    def _goal_xy_z(self, priv):
        i = int(priv["target_index"])
        size = np.asarray(priv["object_sizes"][i], dtype=np.float64)
        return np.asarray(priv["goal_poses"][i][:2], dtype=np.float64), size[2] / 2 + 0.012


class StackGoalExpert(_GoalExpert):
    task = "stack_goal"
    base_tolerance = 0.025  # tighter than the task's 4 cm for the bottom cube's spot

    @staticmethod
    def _order(priv) -> list[int]:
        cubes = [i for i, s in enumerate(priv["object_shapes"]) if s == "cube"]
        return sorted(cubes, key=lambda i: float(priv["goal_poses"][i][2]))  # bottom first

    def _pending(self, priv):
        order, poses = self._order(priv), priv["object_poses"]
        base, spot = np.asarray(poses[order[0]][:3]), np.asarray(priv["goal_poses"][order[0]][:2])
        if np.linalg.norm(base[:2] - spot) > self.base_tolerance or base[2] > 0.03:
            return order  # the bottom cube was knocked off its spot: put it back first, then rebuild
        for k in range(1, len(order)):
            lo, up = np.asarray(poses[order[k - 1]][:3]), np.asarray(poses[order[k]][:3])
            want = 0.5 * (priv["object_sizes"][order[k - 1]][2] + priv["object_sizes"][order[k]][2])
            if np.linalg.norm(up[:2] - lo[:2]) > 0.015 or abs(up[2] - lo[2] - want) > 0.01:
                return order[k:]
        return []

    def _goal_xy_z(self, priv):
        order = self._order(priv)
        i = int(priv["target_index"])
        if i == order[0]:  # the bottom cube goes back to its spot on the table
            size = np.asarray(priv["object_sizes"][i], dtype=np.float64)
            return np.asarray(priv["goal_poses"][i][:2], dtype=np.float64), size[2] / 2 + 0.012
        below = order[order.index(i) - 1]
        base = np.asarray(priv["object_poses"][below][:3], dtype=np.float64)
        base_h = float(priv["object_sizes"][below][2])
        size = np.asarray(priv["object_sizes"][i], dtype=np.float64)
        return base[:2], base[2] + base_h / 2 + size[2] / 2 + 0.008


EXPERTS: dict[str, type[ScriptedExpert]] = {
    "pick": PickExpert,
    "place": PlaceExpert,
    "push": PushExpert,
    "stack": StackExpert,
    "arrange": ArrangeExpert,
    "stack_goal": StackGoalExpert,
}


def make_expert(task: str, noise: float = 0.0, seed: int = 0) -> ScriptedExpert:
    """The scripted expert for `task` (a Policy reading `info["privileged"]`).

    A task variant registered as a subclass of another task (e.g. `pick_colour` of `pick`) gets its
    parent's expert unless it has its own entry in `EXPERTS`.
    """
    for cls in type(get_task(task)).__mro__:  # get_task: a clear error on unknown names
        name = getattr(cls, "name", "")
        if name in EXPERTS:
            return EXPERTS[name](noise=noise, seed=seed)
    raise ValueError(f"no scripted expert for task {task!r}; expected one of {sorted(EXPERTS)}")


def make_expert_policy(task: str = "pick", noise: float = 0.0, seed: int = 0, action_dim: int = 7):
    """The policy registry's "expert" (`vla.core.policy.POLICIES`); experts act in 7-D EE deltas only."""
    if action_dim != 7:
        raise ValueError(f"expert: action_dim must be 7 (EE-delta space), got {action_dim}")
    return make_expert(task, noise=noise, seed=seed)

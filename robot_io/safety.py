"""The safety layer: every command the node sends passes through here first. Pure, unit-testable parts.

Per control step (legend: D = 7 action dims, J = arm joints):
    gate(...)                 hold if disabled, no instruction, or a stale image/joint state (watchdog)
    JointStateMonitor         hold if the joint states jump between messages, or are not yet steady when
                              a new command stream starts (plausibility; it does not trust the sensor feed)
    command_disagreement(q)   hold if the measured joints left the last command by more than a tolerance
    filter_ee_delta(a, ee)    finite check -> workspace box -> translation cap -> rotation cap -> gripper
    filter_joints(q*, q)      finite check -> joint position limits (URDF - margin) -> joint step caps
                              relative to BOTH the measured joints and the last commanded target
    filter_next_point(q*, p)  a trajectory's later points: limits -> one joint step from the point before

`SafetyLimits` holds the parameters (a YAML file per robot in configs/robot/); joint limits default to
the robot's URDF (`robot_io.kinematics.urdf_joint_limits`). Guarantees (hypothesis-tested): a passed
EE delta has ||translation|| <= max_translation and ||rotation|| <= max_rotation, keeps a target that
starts inside the workspace box inside it (and never moves away from the box on any axis if it starts
outside); passed joint targets move by at most velocity * dt per joint from the measured joints and
from the previous target, and stay within the position limits when the current position is within
them; the gripper command is exactly 0.0 or 1.0. Because the step cap also holds relative to the
command stream, joint states that lie (spoofed or faulty) cannot move a target further than one step
from where the arm was last sent (docs/ros2.md, "Security"). Every intervention increments a named
counter reported in the node's diagnostics.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla.core.config import config_dir

PANDA_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
PANDA_FINGERS = ("panda_finger_joint1", "panda_finger_joint2")


@dataclass
class SafetyLimits:
    """Safety parameters of one robot (schema of configs/robot/<robot>.yaml)."""

    name: str = "panda"
    urdf: str = "franka_panda/panda.urdf"  # absolute, or relative to pybullet_data
    ee_link: str = "panda_grasptarget"
    joint_names: list[str] = field(default_factory=lambda: list(PANDA_JOINTS))
    # The gripper's finger joints in the JointState: their positions sum to the gripper width (m).
    finger_joints: list[str] = field(default_factory=lambda: list(PANDA_FINGERS))
    control_hz: float = 10.0
    max_translation: float = 0.025  # metres per control step (norm of dx, dy, dz)
    max_rotation: float = 0.1  # radians per control step (norm of droll, dpitch, dyaw)
    workspace_low: list[float] = field(default_factory=lambda: [0.2, -0.45, 0.0])  # base frame, metres
    workspace_high: list[float] = field(default_factory=lambda: [0.85, 0.45, 0.6])
    joint_lower: list[float] | None = None  # None: from the URDF
    joint_upper: list[float] | None = None
    joint_velocity: list[float] | None = None  # rad/s
    joint_margin: float = 0.02  # rad kept away from the URDF position limits
    velocity_scale: float = 0.5  # fraction of the URDF velocity limit allowed
    gripper_close_below: float = 0.4  # hysteresis band: close when < this, open when > open_above
    gripper_open_above: float = 0.6
    watchdog_timeout: float = 0.5  # seconds without a fresh image or joint state -> hold
    # Plausibility of the joint states (docs/ros2.md, "Security"): consecutive joint states may differ
    # by at most one joint step (velocity * scale / control_hz, more if the messages are further apart)
    # plus this tolerance; a bigger jump holds the arm for implausible_hold_s.
    joint_jump_tolerance: float = 0.05  # rad
    implausible_hold_s: float = 1.0  # s
    # Measured joints further than this from the last commanded target: hold (a blocked arm, a lying
    # sensor). Beyond two joint steps the two step caps cannot both be met, so that is a hold too.
    command_tolerance: float = 0.2  # rad
    # A new command stream (enable, new instruction, new sim episode) starts only from joint states
    # that agreed within joint_jump_tolerance for this long (0 = no wait).
    settle_s: float = 0.3  # s

    def validate(self, where: str = "safety limits") -> None:
        def bad(msg: str) -> None:
            raise ValueError(f"{where}: {msg}")

        for key in (
            "max_translation",
            "max_rotation",
            "control_hz",
            "watchdog_timeout",
            "velocity_scale",
            "joint_jump_tolerance",
            "command_tolerance",
        ):
            v = getattr(self, key)
            if not (np.isfinite(v) and v > 0):
                bad(f"{key} must be a positive number, got {v}")
        for key in ("implausible_hold_s", "settle_s"):
            v = getattr(self, key)
            if not (np.isfinite(v) and v >= 0):
                bad(f"{key} must be a number >= 0, got {v}")
        lo, hi = np.asarray(self.workspace_low, float), np.asarray(self.workspace_high, float)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(lo < hi):
            bad(f"workspace_low/high must be 3 numbers each with low < high, got {lo.tolist()} {hi.tolist()}")
        if not 0.0 <= self.gripper_close_below <= self.gripper_open_above <= 1.0:
            bad("expected 0 <= gripper_close_below <= gripper_open_above <= 1")
        if not self.finger_joints or set(self.finger_joints) & set(self.joint_names):
            bad(
                "finger_joints must name the gripper's finger joints (not arm joints), "
                f"got {list(self.finger_joints)}"
            )
        n = len(self.joint_names)
        for key in ("joint_lower", "joint_upper", "joint_velocity"):
            v = getattr(self, key)
            if v is not None and len(v) != n:
                bad(f"{key} must have {n} values (one per joint in joint_names), got {len(v)}")

    @property
    def dt(self) -> float:
        return 1.0 / self.control_hz


def cap_norm(v: np.ndarray, limit: float) -> tuple[np.ndarray, bool]:
    """Scale `v` down (direction kept) so that ||v|| <= limit; return (result, clipped?)."""
    m = float(np.max(np.abs(v))) if v.size else 0.0
    n = m * float(np.linalg.norm(v / m)) if m > 0 else 0.0  # no overflow for huge finite values
    if n <= limit:
        return v.copy(), False
    return v * (limit / n) * (1.0 - 1e-9), True


def workspace_delta(
    delta: np.ndarray, ee: np.ndarray, low: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, bool]:
    """Adjust a translation `delta` [3] so `ee + delta` stays in the box; outside it, only move toward it."""
    target = ee + delta
    lo = np.minimum(low, ee)  # an axis already outside the box may not move further out
    hi = np.maximum(high, ee)
    clamped = np.clip(target, lo, hi)
    out = clamped - ee
    return out, bool(np.any(np.abs(out - delta) > 1e-12))


def limit_joints(
    q_target: np.ndarray,
    q_current: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    max_step: np.ndarray,
    q_commanded: np.ndarray | None = None,
) -> tuple[np.ndarray | None, bool, bool]:
    """Clip joint targets [J] to [lower, upper], then to |q - q_current| <= max_step and (when given)
    |q - q_commanded| <= max_step. The step caps win over the position limits (an arm outside its
    limits moves back by at most one step).

    Returns (q_out, position_clipped, velocity_clipped); q_out is None when the two step boxes do not
    overlap (measured and commanded joints more than two steps apart)."""
    q_pos = np.clip(q_target, lower, upper)
    lo, hi = q_current - max_step, q_current + max_step
    if q_commanded is not None:
        lo, hi = np.maximum(lo, q_commanded - max_step), np.minimum(hi, q_commanded + max_step)
        if np.any(lo > hi):
            return None, False, False
    q_out = np.clip(q_pos, lo, hi)
    return q_out, bool(np.any(q_pos != q_target)), bool(np.any(q_out != q_pos))


class GripperHysteresis:
    """Binary gripper command with a dead band: 1.0 = open, 0.0 = closed; starts open."""

    def __init__(self, close_below: float = 0.4, open_above: float = 0.6, initial_open: bool = True):
        self.close_below, self.open_above = close_below, open_above
        self.is_open = initial_open

    def __call__(self, value: float) -> tuple[float, bool]:
        """Return (command, held?): held when the value is inside the band or not finite."""
        if not np.isfinite(value):
            return float(self.is_open), True
        if value < self.close_below:
            self.is_open = False
        elif value > self.open_above:
            self.is_open = True
        else:
            return float(self.is_open), True
        return float(self.is_open), False


class Watchdog:
    """Tracks when each required input was last fresh; reports the stale ones."""

    def __init__(self, required: Sequence[str], timeout: float):
        self.required, self.timeout = tuple(required), timeout
        self._last: dict[str, float] = {}

    def feed(self, name: str, now: float) -> None:
        self._last[name] = now

    def stale(self, now: float) -> list[str]:
        return [n for n in self.required if now - self._last.get(n, -np.inf) > self.timeout]

    def age(self, name: str, now: float) -> float:
        return now - self._last.get(name, -np.inf)


class JointStateMonitor:
    """Plausibility of the joint-state stream; the arm is the only thing that moves the readings.

    `accept(q, now)`: a reading that differs from the previous message (accepted or not) on any joint by
    more than `tolerance + max_step * max(1, dt / control_dt)` (dt = time between the two messages as
    received, capped at `max_dt`) is a jump: rejected, and `held(now)` is true for `hold_s`. A spoofer
    publishing beside the real driver makes the stream alternate, so it jumps on every message.
    `settled(now)`: at least two readings in the last `settle_s`, all within `tolerance` of each other
    and no hold: the only readings a new command stream may start from (`settle_s` 0: always).
    `last_jump` / `max_jump`: the latest and the largest change seen, in units of the allowed bound."""

    def __init__(
        self,
        max_step: np.ndarray,
        control_dt: float,
        tolerance: float,
        hold_s: float,
        settle_s: float,
        max_dt: float,
    ):
        self.max_step, self.control_dt, self.tolerance = np.asarray(max_step, float), control_dt, tolerance
        self.hold_s, self.settle_s, self.max_dt = hold_s, settle_s, max_dt
        self._prev: tuple[float, np.ndarray] | None = None
        self._held_until = -np.inf
        self._recent: deque[tuple[float, np.ndarray]] = deque()
        self.max_jump = self.last_jump = 0.0

    def bound(self, dt: float) -> np.ndarray:
        """How far each joint may move between two messages `dt` seconds apart [J]."""
        dt = min(max(dt, 0.0), self.max_dt)
        return self.tolerance + self.max_step * max(1.0, dt / self.control_dt)

    def accept(self, q: np.ndarray, now: float) -> bool:
        prev, self._prev = self._prev, (now, q)
        if prev is not None:
            ratio = float(np.max(np.abs(q - prev[1]) / self.bound(now - prev[0])))
            self.last_jump, self.max_jump = ratio, max(self.max_jump, ratio)
            if ratio > 1.0:
                self._held_until = now + self.hold_s
                self._recent.clear()
                return False
        self._recent.append((now, q))
        while self._recent and self._recent[0][0] < now - self.settle_s:
            self._recent.popleft()
        return True

    def held(self, now: float) -> bool:
        return now < self._held_until

    def settled(self, now: float) -> bool:
        if self.held(now):
            return False
        if self.settle_s <= 0:
            return True
        recent = [q for t, q in self._recent if t >= now - self.settle_s]
        if len(recent) < 2:
            return False
        qs = np.stack(recent)
        return bool(np.all(qs.max(0) - qs.min(0) <= self.tolerance))


@dataclass
class EECommand:
    """A passed end-effector command: delta [6] (m, rad, per step) and binary gripper (1 open)."""

    delta: np.ndarray
    gripper: float


class SafetyFilter:
    """Applies the limits to every command and counts each intervention in `counters`."""

    def __init__(
        self,
        limits: SafetyLimits,
        joint_lower: np.ndarray,
        joint_upper: np.ndarray,
        joint_velocity: np.ndarray,
    ):
        limits.validate()
        self.limits = limits
        j = len(limits.joint_names)
        lower = np.asarray(limits.joint_lower if limits.joint_lower is not None else joint_lower, float)
        upper = np.asarray(limits.joint_upper if limits.joint_upper is not None else joint_upper, float)
        vel = np.asarray(
            limits.joint_velocity if limits.joint_velocity is not None else joint_velocity, float
        )
        for key, arr in (("joint_lower", lower), ("joint_upper", upper), ("joint_velocity", vel)):
            if arr.shape != (j,) or not np.all(np.isfinite(arr)):
                raise ValueError(
                    f"safety limits {limits.name}: {key} expected {j} finite values, got {arr.tolist()}"
                )
        self.lower = lower + limits.joint_margin  # [J]
        self.upper = upper - limits.joint_margin
        if not np.all(self.lower < self.upper):
            raise ValueError(
                f"safety limits {limits.name}: joint_margin {limits.joint_margin} leaves no range"
            )
        self.max_step = vel * limits.velocity_scale * limits.dt  # [J] rad per control step
        self.ws_low = np.asarray(limits.workspace_low, float)
        self.ws_high = np.asarray(limits.workspace_high, float)
        self.gripper = GripperHysteresis(limits.gripper_close_below, limits.gripper_open_above)
        self.counters: Counter[str] = Counter()
        self.q_commanded: np.ndarray | None = None  # [J] the last joint target sent (None: none yet)

    def monitor(self) -> JointStateMonitor:
        """A joint-state plausibility monitor with this robot's step caps and tolerances."""
        lim = self.limits
        return JointStateMonitor(
            self.max_step,
            lim.dt,
            lim.joint_jump_tolerance,
            lim.implausible_hold_s,
            lim.settle_s,
            max_dt=lim.watchdog_timeout,
        )

    def anchor(self) -> None:
        """Forget the command stream: the next target is capped relative to the measured joints only.
        Called when a new stream starts (enable, new instruction, new sim episode), after the joint
        states have settled."""
        self.q_commanded = None

    def commit(self, q: np.ndarray) -> None:
        """Record a joint target as sent: later targets stay within one step of it."""
        self.q_commanded = np.array(q, dtype=np.float64)

    def command_disagreement(self, q_measured: np.ndarray) -> float:
        """Largest |measured - last commanded| over the joints (0 without a command stream)."""
        if self.q_commanded is None:
            return 0.0
        return float(np.max(np.abs(np.asarray(q_measured, float) - self.q_commanded)))

    def count(self, name: str) -> None:
        self.counters[name] += 1

    def gate(self, enabled: bool, instruction: str | None, stale: Sequence[str]) -> str | None:
        """Return a hold reason, or None when commanding is allowed."""
        if not enabled:
            reason = "hold_disabled"
        elif not instruction:
            reason = "hold_no_instruction"
        elif stale:
            reason = "hold_stale_observation"
        else:
            return None
        self.count(reason)
        return reason

    def filter_ee_delta(self, action: np.ndarray, ee_pos: np.ndarray) -> EECommand | None:
        """Action [>=7] (dx, dy, dz, droll, dpitch, dyaw, gripper) at EE position [3] -> a safe command."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape[0] < 7 or not np.all(np.isfinite(a[:7])) or not np.all(np.isfinite(ee_pos)):
            self.count("nonfinite_or_malformed_action")
            return None
        trans, ws = workspace_delta(a[:3], np.asarray(ee_pos, float), self.ws_low, self.ws_high)
        trans, tc = cap_norm(trans, self.limits.max_translation)
        rot, rc = cap_norm(a[3:6], self.limits.max_rotation)
        grip, held = self.gripper(float(a[6]))
        for flag, name in ((ws, "workspace_clipped"), (tc, "translation_clipped"), (rc, "rotation_clipped")):
            if flag:
                self.count(name)
        if held and abs(a[6] - grip) > 1e-6:
            self.count("gripper_hysteresis_held")
        return EECommand(delta=np.concatenate([trans, rot]), gripper=grip)

    def filter_joints(self, q_target: np.ndarray, q_current: np.ndarray) -> np.ndarray | None:
        """Joint targets [J] -> targets within the position limits and one step of both the measured
        joints `q_current` and the last committed target; None if not finite or the two disagree by
        more than two steps."""
        return self._limit_joints(q_target, q_current, self.q_commanded)

    def filter_next_point(self, q_target: np.ndarray, q_previous: np.ndarray) -> np.ndarray | None:
        """A later point of a trajectory: joint targets [J] -> targets within the position limits and one
        step of the previous point `q_previous` [J] (the first point is `filter_joints`'s); None if not
        finite or not [J]."""
        return self._limit_joints(q_target, q_previous, None)

    def _limit_joints(
        self, q_target: np.ndarray, q_from: np.ndarray, q_commanded: np.ndarray | None
    ) -> np.ndarray | None:
        """The joint filter of both: finite [J] inputs, then `limit_joints` from `q_from` (and within one
        step of `q_commanded` when given), each clip and refusal counted."""
        qt, qf = np.asarray(q_target, float), np.asarray(q_from, float)
        if qt.shape != self.lower.shape or qf.shape != self.lower.shape:
            self.count("nonfinite_or_malformed_joints")
            return None
        if not (np.all(np.isfinite(qt)) and np.all(np.isfinite(qf))):
            self.count("nonfinite_or_malformed_joints")
            return None
        q, pc, vc = limit_joints(qt, qf, self.lower, self.upper, self.max_step, q_commanded)
        if q is None:  # only with q_commanded: the two references disagree by more than two steps
            self.count("hold_command_disagreement")
            return None
        if pc:
            self.count("joint_position_clipped")
        if vc:
            self.count("joint_velocity_clipped")
        return q

    def report(self) -> Mapping[str, int]:
        return dict(self.counters)


def load_limits(robot: str) -> SafetyLimits:
    """Limits from `configs/robot/<robot>.yaml` (a name) or a YAML file path; validated."""
    from omegaconf import OmegaConf

    path = Path(robot) if robot.endswith((".yaml", ".yml")) else config_dir() / "robot" / f"{robot}.yaml"
    if not path.is_file():
        known = sorted(q.stem for q in (config_dir() / "robot").glob("*.yaml"))
        raise FileNotFoundError(f"robot safety file not found: {path} (known robots: {known})")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(SafetyLimits), OmegaConf.load(path))
    except Exception as e:  # omegaconf validation errors name the key; re-raise as a plain ValueError
        raise ValueError(f"{path}: {e}") from e
    limits = OmegaConf.to_object(merged)
    limits.validate(str(path))
    return limits

"""From a policy step's actions to what goes on the command topics: safety-checked joint trajectories, one
point per action or a whole action chunk streamed the ros2_control way, and the dry run that only reports.

`plan_points(actions [N, >=7], q [J], ...)` turns N end-effector deltas into N joint points through the same
path the single step always took: each action passes `SafetyFilter.filter_ee_delta` (caps, the workspace
box, gripper hysteresis) at the pose the point starts from, its EE target pose is integrated
(ee_target=measured: the pose the previous point's joints reach (+) delta; commanded: the previous commanded
pose (+) delta, kept within ee_max_lag), PyBullet IK seeded with the previous point solves it, and the
joints pass the joint filter: the first point `filter_joints` (limits, one step from the measured joints and
from where the controller is commanded now), every later one `filter_next_point` (limits, one step from the
previous point); the EE the solution reaches may not leave the box further than where the point started (+
WORKSPACE_TOLERANCE). A point the filter cannot pass (non-finite action or joints, IK error, an IK solution
outside the box) ends the trajectory at the last safe point (`stream_truncated`), or holds when it is the
first. `Commander` sends a plan as one `trajectory_msgs/JointTrajectory` (header stamp 0 = "start now";
point i at time_from_start (i+1)/point_hz), plus the first point's EE delta (TwistStamped) and gripper
(Float64); with `stream.points` > 1 it keeps the trajectory as the command stream (`Stream`): every tick the
safety reference is the joint position the controller is commanded at that moment (linear between points, as
a position-only JointTrajectoryController interpolates), the gripper value of the point being approached is
sent when it changes, a new plan is made once `stream.replan_every` points have run (the new trajectory
replaces the remainder of the old one on receipt), and a hold (or a new command stream) while points are
left sends a one-point trajectory at the measured joints (at the commanded ones when the joint states are
stale), so the arm stops within one point period instead of finishing the chunk. With `dry_run` nothing but
diagnostics is published: the commands are computed and safety-checked as they would be sent (each from the
measured arm, which does not move), and their count and the last one are reported in `vla/status`. Shapes: J
arm joints, N points, D >= 7 action dims (dx, dy, dz, droll, dpitch, dyaw, gripper), poses as (position [3]
m, quaternion xyzw [4]).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pybullet as pb

from robot_io import convert, msgs
from robot_io.config import NodeConfig, StreamConfig
from robot_io.kinematics import Kinematics
from robot_io.safety import SafetyFilter
from robot_io.transport import RELIABLE

log = logging.getLogger(__name__)
Pose = tuple[np.ndarray, np.ndarray]  # (position [3] m, quaternion xyzw [4]), base frame
WORKSPACE_TOLERANCE = 0.01  # m an IK solution's EE may lie outside the box beyond where its point started


def chunk_policy(policy: Any) -> Any | None:
    """The object that predicts `policy`'s action chunks (`predict_chunk(obs) -> [T, D]`): the policy
    itself, or what a wrapper (ActionChunkQueue, TemporalEnsemble) holds as `.policy`; None if none does."""
    p, seen = policy, 0
    while p is not None and seen < 8:
        if callable(getattr(p, "predict_chunk", None)):
            return p
        p, seen = getattr(p, "policy", None), seen + 1
    return None


def check_stream(stream: StreamConfig, policy: Any = None) -> None:
    """`stream.*` of a node config (and, when given, whether `policy` can stream that many points): a
    ValueError naming the key and what it expects."""
    points, every, hz = stream.points, stream.replan_every, stream.point_hz
    if not (isinstance(points, int) and points >= 1):
        raise ValueError(f"stream.points must be an integer >= 1 (1 = one point per step), got {points!r}")
    if not (isinstance(every, int) and 1 <= every <= points):
        raise ValueError(f"stream.replan_every must be in [1, stream.points={points}], got {every}")
    if not (isinstance(hz, (int, float)) and np.isfinite(hz) and hz >= 0):
        raise ValueError(f"stream.point_hz must be a finite number >= 0 (0 = rate_hz), got {hz!r}")
    if points == 1 or policy is None:
        return
    chunker = chunk_policy(policy)
    if chunker is None:
        raise ValueError(
            f"stream.points={points} needs a policy that predicts action chunks (predict_chunk -> [T, D], "
            f"e.g. policy=vla with a checkpoint trained with chunk_len >= {points}); {type(policy).__name__} "
            "does not: set stream.points=1"
        )
    length = getattr(chunker, "chunk_len", None)
    if length is not None and points > int(length):
        raise ValueError(
            f"stream.points={points} exceeds the policy's chunk length {int(length)} (its chunks are "
            f"[{int(length)}, D]): set stream.points <= {int(length)}"
        )


def rotate(quat: np.ndarray, drpy: np.ndarray) -> np.ndarray:
    """A quaternion xyzw [4] turned by roll/pitch/yaw [3] about the base axes (as the IK step applies an EE
    delta's rotation); unchanged for a zero rotation."""
    d = np.asarray(drpy, dtype=np.float64)
    if not np.any(d != 0.0):
        return np.asarray(quat, dtype=np.float64)
    dq = pb.getQuaternionFromEuler(d.tolist())
    _, q = pb.multiplyTransforms((0, 0, 0), dq, (0, 0, 0), np.asarray(quat, float).tolist())
    return np.asarray(q) / np.linalg.norm(q)


def commanded_target(
    previous: Pose | None,
    ee_pos: np.ndarray,
    ee_quat: np.ndarray,
    delta: np.ndarray,
    max_lag: float,
    ws_low: np.ndarray,
    ws_high: np.ndarray,
) -> Pose:
    """ee_target=commanded: the previous commanded pose (None: the pose `ee_pos`, `ee_quat`) (+) delta [6],
    the position kept within `max_lag` m of `ee_pos` and inside the workspace box [3], [3]."""
    pos0, quat0 = previous if previous is not None else (ee_pos, ee_quat)
    pos = pos0 + delta[:3]
    lag = pos - ee_pos
    n = float(np.linalg.norm(lag))
    if n > max_lag:
        pos = ee_pos + lag * (max_lag / n)
    return np.clip(pos, ws_low, ws_high), rotate(quat0, delta[3:6])


def _outside(p: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Per-axis distance [3] of a position outside the box (0 inside)."""
    return np.maximum(low - p, 0.0) + np.maximum(p - high, 0.0)


@dataclass
class Plan:
    """A safety-passed trajectory: `q` [N, J] joint points, `deltas` [N, 6] the safe EE delta of each,
    `grippers` [N] binary gripper commands (1 open), `poses` the N EE target poses; `requested` actions
    were planned and `stop` says why fewer points came out (None: all of them)."""

    q: np.ndarray
    deltas: np.ndarray
    grippers: np.ndarray
    poses: list[Pose]
    requested: int
    stop: str | None = None


def plan_points(
    actions: Any,
    q: np.ndarray,
    kin: Kinematics,
    safety: SafetyFilter,
    ee_target: str = "measured",
    ee_command: Pose | None = None,
    ee_max_lag: float = 0.08,
) -> tuple[Plan | None, str | None]:
    """Actions [N, >=7] (or one [>=7]) at the measured joints `q` [J] -> (Plan of 1..N safe points, None),
    or (None, hold reason) when the first point cannot pass (see the module docstring). Every intervention
    is counted in `safety.counters`; a truncation also as `stream_truncated`."""
    a = np.asarray(actions, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[0] < 1:
        safety.count("nonfinite_or_malformed_action")
        return None, "hold_unsafe_action"
    q = np.asarray(q, dtype=np.float64)
    was_open = safety.gripper.is_open
    pts: list[np.ndarray] = []
    deltas: list[np.ndarray] = []
    grippers: list[float] = []
    poses: list[Pose] = []
    q_prev, command, stop = q, ee_command, None
    for i in range(a.shape[0]):
        base_pos, base_quat = kin.forward(q_prev)  # where the point starts: the measured arm, then the points
        cmd = safety.filter_ee_delta(a[i], base_pos)
        if cmd is None:
            stop = "hold_unsafe_action"
            break
        try:
            if ee_target == "commanded":
                target = commanded_target(
                    command, base_pos, base_quat, cmd.delta, ee_max_lag, safety.ws_low, safety.ws_high
                )
            else:
                target = (base_pos + cmd.delta[:3], rotate(base_quat, cmd.delta[3:6]))
            q_target = kin.inverse(q_prev, *target)
        except Exception as e:  # a pybullet IK error
            safety.count("ik_error")
            log.warning("IK failed at point %d: %s", i, e)
            stop = "hold_ik_error"
            break
        q_safe = safety.filter_joints(q_target, q) if i == 0 else safety.filter_next_point(q_target, q_prev)
        if q_safe is None:
            stop = "hold_unsafe_joints"
            break
        reached = kin.forward(q_safe)[0]
        room = _outside(base_pos, safety.ws_low, safety.ws_high) + WORKSPACE_TOLERANCE
        if np.any(_outside(reached, safety.ws_low, safety.ws_high) > room):
            safety.count("ik_outside_workspace")
            stop = "hold_ik_outside_workspace"
            break
        pts.append(q_safe)
        deltas.append(cmd.delta)
        grippers.append(cmd.gripper)
        poses.append(target)
        q_prev, command = q_safe, target
    # The hysteresis state is what was sent: the first point's (later ones update it when sent).
    safety.gripper.is_open = bool(grippers[0] == 1.0) if grippers else was_open
    if not pts:
        return None, stop
    if stop is not None:
        safety.count("stream_truncated")
    plan = Plan(np.stack(pts), np.stack(deltas), np.asarray(grippers), poses, a.shape[0], stop)
    return plan, None


def trajectory_msg(joint_names: list[str], q: np.ndarray, dt: float) -> msgs.JointTrajectory:
    """Joint points [N, J] -> a JointTrajectory for ros2_control's JointTrajectoryController: header stamp
    0 ("start now": it replaces the rest of the running trajectory on receipt), point i at
    time_from_start (i+1)*dt, positions only."""
    return msgs.JointTrajectory(
        header=msgs.Header(stamp=msgs.Time(), frame_id="base"),
        joint_names=list(joint_names),
        points=[
            msgs.JointTrajectoryPoint(
                positions=np.asarray(p, float).tolist(),
                time_from_start=convert.duration_from_seconds((i + 1) * dt),
            )
            for i, p in enumerate(np.asarray(q))
        ],
    )


@dataclass
class Stream:
    """A trajectory the controller is executing: sent at node time `t0`, points every `dt` s, heading from
    `start` [J] (the commanded joints when it was sent) through `plan.q` [N, J]; `ee_before` the commanded
    EE pose then (ee_target=commanded)."""

    t0: float
    dt: float
    start: np.ndarray
    plan: Plan
    ee_before: Pose | None = None

    @property
    def n(self) -> int:
        return int(self.plan.q.shape[0])

    def progress(self, now: float) -> float:
        """Points' worth of time since it was sent."""
        return max(0.0, (now - self.t0) / self.dt)

    def reference(self, now: float) -> np.ndarray:
        """The joints [J] the controller is commanded at `now`: linear between the points (and from `start`
        to the first), the last point once it has passed."""
        s = self.progress(now)
        if s >= self.n:
            return self.plan.q[-1].copy()
        i = int(np.floor(s))
        a = self.start if i == 0 else self.plan.q[i - 1]
        return a + (s - i) * (self.plan.q[i] - a)

    def heading(self, now: float) -> int:
        """Index of the point the controller is heading to at `now` (the last one once all have passed)."""
        return min(int(np.floor(self.progress(now) + 1e-6)), self.n - 1)

    def pose_reached(self, now: float) -> Pose | None:
        """The EE target pose of the last point due by `now` (`ee_before` before the first)."""
        i = int(np.floor(self.progress(now) + 1e-6)) - 1
        return self.plan.poses[min(i, self.n - 1)] if i >= 0 else self.ee_before

    def left(self, now: float) -> bool:
        """Whether points are still ahead of the controller."""
        return self.progress(now) < self.n


class Commander:
    """The node's command side (see the module docstring): plans a policy step's actions, publishes them
    (or, with `dry_run`, only counts and keeps them for the diagnostics) and keeps the command stream.
    `record(topic, msg)` gets every message sent; `clock` is the node's."""

    def __init__(
        self,
        cfg: NodeConfig,
        kin: Kinematics,
        safety: SafetyFilter,
        transport: Any,
        policy: Any,
        record: Callable[[str, Any], None],
        clock: Callable[[], float],
    ):
        check_stream(cfg.stream, policy)
        self.cfg, self.kin, self.safety, self.record, self.clock = cfg, kin, safety, record, clock
        self.joint_names = list(safety.limits.joint_names)
        self.points, self.replan_every = cfg.stream.points, cfg.stream.replan_every
        self.dt = 1.0 / (cfg.stream.point_hz or cfg.rate_hz)
        self.chunker = chunk_policy(policy) if self.points > 1 else None
        span = self.points * self.dt
        if self.points > 1 and span > safety.limits.watchdog_timeout:
            log.warning(
                "stream: %d points at %.1f Hz span %.2f s, longer than the watchdog timeout %.2f s: if this "
                "node dies, the controller still runs that long (keep points / point_hz <= watchdog_timeout)",
                self.points,
                1.0 / self.dt,
                span,
                safety.limits.watchdog_timeout,
            )
        self.dry_run = bool(cfg.dry_run)
        t = cfg.topics
        self.pub_twist = self.pub_traj = self.pub_gripper = None
        if not self.dry_run:  # a dry run never creates the command topics' writers
            self.pub_twist = transport.create_publisher(t.ee_delta, msgs.TwistStamped, RELIABLE)
            self.pub_traj = transport.create_publisher(t.joint_trajectory, msgs.JointTrajectory, RELIABLE)
            self.pub_gripper = transport.create_publisher(t.gripper, msgs.Float64, RELIABLE)
        self.stream: Stream | None = None
        self.ee_command: Pose | None = None  # the last commanded EE pose (ee_target=commanded)
        self._gripper_sent: float | None = None
        self.trajectories = 0  # trajectories sent (or, in a dry run, computed)
        self.points_sent = 0
        self.last: dict[str, Any] = {}  # the last trajectory, as the diagnostics show it

    @property
    def streaming(self) -> bool:
        return self.points > 1

    def reset(self, now: float, q_measured: np.ndarray | None) -> None:
        """A new command stream (enable, new instruction, new episode): what is left of the old trajectory
        stops (it was planned for the old one) and the next plan starts from the measured arm."""
        self.stop(now, q_measured)
        self.stream, self.ee_command = None, None

    def tick(self, now: float) -> None:
        """Start of a control tick: while a trajectory runs, the safety reference (the joints every new
        target must stay within one step of) is where the controller is commanded now."""
        if self.stream is not None and not self.dry_run:
            self.safety.commit(self.stream.reference(now))

    def executing(self, now: float) -> bool:
        """Whether the running trajectory still has points before its re-plan: the tick sends only the
        gripper value of the point being approached, when it changed."""
        s = self.stream
        if s is None or s.progress(now) >= min(self.replan_every, s.n) - 0.5:
            return False
        if not self.dry_run:
            g = float(s.plan.grippers[s.heading(now)])
            if g != self._gripper_sent:
                self._send_gripper(g)
        return True

    def actions(self, result: Any) -> np.ndarray:
        """The policy step's result as actions [N, D]: the chunk's first `stream.points` rows, or the one
        action [1, D]."""
        a = np.asarray(result, dtype=np.float64)
        if self.chunker is not None:
            if a.ndim != 2:
                raise ValueError(f"predict_chunk returned shape {a.shape}, expected [T, D]")
            return a[: self.points]
        return a.reshape(1, -1)

    def plan(self, actions: np.ndarray, q: np.ndarray, now: float) -> tuple[Plan | None, str | None]:
        """Plan `actions` [N, D] from the measured joints `q` [J] (and, ee_target=commanded, from the pose
        commanded now)."""
        ee = self.ee_command
        if self.stream is not None and not self.dry_run:
            ee = self.stream.pose_reached(now)
        return plan_points(
            actions, q, self.kin, self.safety, self.cfg.ee_target, ee if not self.dry_run else None,
            self.cfg.ee_max_lag,
        )  # fmt: skip

    def send(self, plan: Plan, q: np.ndarray, image_stamp: float, now: float) -> None:
        """Publish `plan` (dry run: keep it for the diagnostics) and make it the command stream; `q` [J] are
        the measured joints it was planned from."""
        first_delta, first_gripper = plan.deltas[0], float(plan.grippers[0])
        traj = trajectory_msg(self.joint_names, plan.q, self.dt)
        self.trajectories += 1
        self.points_sent += plan.q.shape[0]
        self.last = {
            "points": int(plan.q.shape[0]),
            "ee_delta": np.round(first_delta, 5).tolist(),
            "gripper": first_gripper,
            "q_first": np.round(plan.q[0], 5).tolist(),
            "q_last": np.round(plan.q[-1], 5).tolist(),
            "time_from_start_s": [round((i + 1) * self.dt, 4) for i in range(plan.q.shape[0])],
        }
        if self.dry_run:
            self.safety.commit(q)  # the arm does not move: the next command starts from it again
        else:
            t = self.cfg.topics
            # TwistStamped carries the stamp of the image it was computed from (end-to-end traceability).
            stamp = convert.time_from_seconds(image_stamp)
            twist = convert.twist_stamped_msg(first_delta, stamp, frame_id="base")
            self.pub_twist.publish(twist)
            self.pub_traj.publish(traj)
            self.record(t.ee_delta, twist)
            self.record(t.joint_trajectory, traj)
            self._send_gripper(first_gripper)
            if not self.streaming:
                self.safety.commit(plan.q[0])
        if self.cfg.ee_target == "commanded" and not self.dry_run and not self.streaming:
            self.ee_command = plan.poses[0]
        if self.streaming:
            start = self.safety.q_commanded if self.safety.q_commanded is not None else q
            ee_before = self.stream.pose_reached(now) if self.stream is not None else self.ee_command
            self.stream = Stream(now, self.dt, np.array(start, dtype=np.float64), plan, ee_before)
            if not self.dry_run:
                self.safety.commit(self.stream.reference(now))

    def stop(self, now: float, q_measured: np.ndarray | None) -> bool:
        """A hold: when the running trajectory still has points ahead, replace it by one point at the
        measured joints `q_measured` [J] (fresh ones; as a JointTrajectoryController holds when it cancels;
        moved into the position limits by at most one step), or, without them, at the joints commanded now:
        the arm stops within one point period. Returns whether one was sent."""
        s, self.stream = self.stream, None
        if s is None or not s.left(now):
            return False
        q = s.reference(now)
        if q_measured is not None and np.all(np.isfinite(q_measured)):
            q = self.safety.filter_next_point(q_measured, q_measured)
        self.ee_command = s.pose_reached(now)
        if self.dry_run or q is None:
            return False
        self.safety.count("stream_stopped")
        traj = trajectory_msg(self.joint_names, q[None], self.dt)
        self.pub_traj.publish(traj)
        self.record(self.cfg.topics.joint_trajectory, traj)
        self.safety.commit(q)
        return True

    def _send_gripper(self, value: float) -> None:
        grip = msgs.Float64(data=float(value))
        self.pub_gripper.publish(grip)
        self.record(self.cfg.topics.gripper, grip)
        self._gripper_sent = float(value)
        self.safety.gripper.is_open = bool(value == 1.0)

    def status_values(self) -> dict[str, str]:
        """The command side's diagnostics: streaming figures, and in a dry run what would have been sent."""
        out: dict[str, str] = {}
        if self.streaming:
            out.update(
                stream_points=str(self.points),
                stream_replan_every=str(self.replan_every),
                trajectories=str(self.trajectories),
                trajectory_points=str(self.points_sent),
            )
        if self.dry_run:
            out.update(
                dry_run="true",
                dry_run_commands=str(self.trajectories),
                dry_run_points=str(self.points_sent),
                dry_run_last=json.dumps(self.last, separators=(",", ":")) if self.last else "",
            )
        return out

"""The VLA node: every input the policy reads, matched by time, in; safe commands out; the policy on its
own thread under a deadline.

Inputs (robot_io.inputs): one image topic per camera the policy reads (a checkpoint: its processor's
cameras; `cameras={static: TOPIC, wrist: TOPIC}`), depth (+ CameraInfo, checked against the camera models
saved with the checkpoint) of the cameras its point clouds are built from, joint states, the
instruction. A camera or depth topic the checkpoint needs but the config does not name stops the node
before it starts (`ConfigError`); a message that does not fit (encoding, image size, depth size,
intrinsics, joint names) holds the arm (`hold_input_mismatch`) with one logged line naming the topic,
what was expected and what came, until a fitting one arrives. Messages are matched by their header
stamps with an approximate-time policy: each policy step takes the newest image of the first camera not
used yet and, from every other stream, the message nearest to it in time; the set is used only if its
stamps lie within `max_skew_s` and none of it was received longer than the watchdog timeout ago
(`hold_unsynced_inputs` / `hold_stale_frames` otherwise); the skew is in the diagnostics. A message
without a stamp counts as stamped when it arrived.

Threads: the executor thread spins the transport (callbacks only decode, validate and store the message
in its stream's short buffer, so they never block); the control thread wakes at `rate_hz`, matches one
frame set and runs one step; the policy thread runs `policy.select_action` (and `reset`), one call at a
time, while the control thread waits for it at most `policy_timeout_s`:

    gate (enable, instruction, watchdog, input fit, joint-state plausibility, command agreement, time match)
    -> policy.select_action(obs, info), or with stream.points > 1 its chunk [policy thread, deadline]
    -> per point: safety.filter_ee_delta -> IK (PyBullet, robot URDF) -> joint filter (robot_io.trajectory)
    -> publish TwistStamped, JointTrajectory (one point, or the chunk's points), gripper Float64 (none of
    them with dry_run: the diagnostics say what would have gone out); DiagnosticArray every tick (rate,
    latency, skew, hold reason, intervention counters), and a one-line status on the console every
    `status_log_s`. A streamed trajectory runs until its re-plan; a hold while points are left stops it.

Any failure on the way (malformed or misfitting message, stale or unmatched input, disabled, no
instruction, an instruction over `max_instruction_chars`, joint states that jump or disagree with the
command stream, a policy step that raises or misses its deadline, non-finite action, IK failure) is
counted and the step publishes no command (hold: the arm's trajectory controller keeps its last,
safety-passed goal). A late policy step is never waited for: its result is discarded, and until it
returns the ticks hold (`hold_policy_busy`), so status keeps flowing at the control rate whatever the
policy does. Nothing reaches the command topics without passing `SafetyFilter`, whose joint step caps
hold relative to the measured joints and to the last command sent. Enabling over the wire needs the
token (`robot_io.enable`: HMAC of a challenge); `vla/enable` false from anyone disables. Observation
layout follows `vla.core.types` (images/<camera> uint8 [H, W, 3], depth/<camera> float32 [H, W], state
[15], instruction); the state is packed by `vla.core.state.pack_state` (the function training data is
packed with) from the matched joint state (EE pose by forward kinematics, the gripper width from the
finger joints); IK and the safety caps use the newest joint state. A joint state without a gripper width
holds the arm (`hold_no_gripper_width`): the width is required, never estimated (the rule of
vla.core.state).

The node is split in three modules: this one (configuration checks, subscriptions and the control step:
gate, time matching, policy call, planning), robot_io.node_callbacks (the executor side: every input
message decoded, checked and stored) and robot_io.node_runtime (the policy thread, the executor and
control loops, diagnostics, console status and the run summary); `VlaNode` joins them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from robot_io import enable, msgs
from robot_io.config import NodeConfig
from robot_io.inputs import policy_inputs, resolve_inputs
from robot_io.kinematics import Kinematics
from robot_io.node_callbacks import HISTORY, JOINTS, NodeCallbacks, _Msg
from robot_io.node_callbacks import decode_info as decode_info
from robot_io.node_runtime import NodeRuntime, PolicyRunner
from robot_io.safety import SafetyFilter, SafetyLimits, Watchdog
from robot_io.trajectory import Commander
from robot_io.transport import LATCHED, RELIABLE, SENSOR_DATA
from vla.core.state import pack_state
from vla.core.types import INSTRUCTION_KEY, STATE_KEY, depth_key, image_key

log = logging.getLogger(__name__)
# Holds that a stream of misfitting messages explains better (reported as hold_input_mismatch).
_INPUT_HOLDS = (
    "hold_stale_observation",
    "hold_no_observation",
    "hold_no_camera_info",
    "hold_unsynced_inputs",
    "hold_stale_frames",
)


class VlaNode(NodeCallbacks, NodeRuntime):
    """See the module docstring. `clock` is monotonic seconds (injectable for tests)."""

    def __init__(
        self,
        cfg: NodeConfig,
        policy: Any,
        transport: Any,
        limits: SafetyLimits,
        recorder: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cfg, self.policy, self.transport, self.recorder, self.clock = (
            cfg,
            policy,
            transport,
            recorder,
            clock,
        )
        self.limits = limits
        if cfg.max_instruction_chars < 1:
            raise ValueError(f"max_instruction_chars must be >= 1, got {cfg.max_instruction_chars}")
        if not (cfg.policy_timeout_s >= 0):
            raise ValueError(
                f"policy_timeout_s must be >= 0 (0 = 0.9 control periods), got {cfg.policy_timeout_s}"
            )
        self.policy_timeout = cfg.policy_timeout_s or 0.9 / cfg.rate_hz
        if not (cfg.max_skew_s >= 0):
            raise ValueError(f"max_skew_s must be >= 0, got {cfg.max_skew_s}")
        if cfg.ee_target not in ("measured", "commanded") or not (cfg.ee_max_lag > 0):
            raise ValueError(
                "ee_target must be measured|commanded and ee_max_lag > 0, "
                f"got {cfg.ee_target!r}, {cfg.ee_max_lag}"
            )
        # What the policy reads and the topics that carry it (a ConfigError when one is not configured).
        self.inputs = resolve_inputs(cfg, policy_inputs(policy))
        self.cameras = [c.name for c in self.inputs.cameras]
        self._pivot = f"image/{self.cameras[0]}"  # the stream a frame set is built around
        self._token = enable.load_token(cfg.enable_token_file)
        # The weakest way in names the mode: unauthenticated > token > only `enabled=true` at launch.
        self.enable_mode = (
            "unauthenticated"
            if cfg.allow_unauthenticated_enable
            else "token"
            if self._token
            else "launch_only"
        )
        self._nonce = enable.new_nonce()
        self.kin = Kinematics(limits.urdf, limits.joint_names, limits.ee_link)
        self.safety = SafetyFilter(limits, self.kin.lower, self.kin.upper, self.kin.velocity)
        self.joint_monitor = self.safety.monitor()
        self.runner = PolicyRunner()
        streams = [f"image/{c}" for c in self.cameras] + [f"depth/{c.name}" for c in self.inputs.depth]
        self._buffers: dict[str, deque[_Msg]] = {
            k: deque(maxlen=HISTORY[k.split("/")[0]]) for k in [*streams, JOINTS]
        }
        self.watchdog = Watchdog([*streams, JOINTS], limits.watchdog_timeout)
        self._lock = threading.Lock()
        self._seq = 0  # messages stored, all streams (orders them)
        self._mismatch: dict[
            str, str
        ] = {}  # topic -> why its last message does not fit (held until one does)
        self._mismatch_logged: set[str] = set()
        self._info_ok: dict[str, bool] = {c: False for c in self.inputs.point_cameras}  # CameraInfo fits
        # The newest of the first camera / its depth / the joint states (status and tests read these).
        self._image: np.ndarray | None = None  # [H, W, 3] uint8
        self._image_stamp = 0.0  # sender's wall-clock stamp (s)
        self._image_seq = 0  # images of the first camera received (freshness never relies on the clock)
        self._depth: np.ndarray | None = None  # [H, W] float32
        self._q: np.ndarray | None = None  # [J] float64
        self._gripper_width: float | None = None  # metres; None: the joint state had no finger joints
        self._instruction = cfg.instruction
        self._instruction_refused = False  # the last instruction was over max_instruction_chars
        if len(cfg.instruction) > cfg.max_instruction_chars:
            raise ValueError(
                f"instruction: {len(cfg.instruction)} characters, over max_instruction_chars="
                f"{cfg.max_instruction_chars}"
            )
        self._enabled = bool(cfg.enabled)
        self._info: dict[str, Any] | None = None
        self._needs_reset = True
        self._episode: Any = None
        self._last_used_seq = 0  # sequence number of the first camera's image the last policy step used
        self.steps = 0  # commands published
        self.ticks = 0
        self.hold_reason: str | None = "starting"
        self.latencies_ms: deque[float] = deque(maxlen=2000)
        self.all_latencies_ms: list[float] = []  # every command's, for the run summary
        self.skews_ms: list[float] = []  # skew of every frame set a command was computed from
        self.unsynced_skew_ms = 0.0  # the smallest skew of the last frame sets refused as unmatched
        self._command_times: list[float] = []
        self._tick_times: deque[float] = deque(maxlen=50)
        self._last_log: tuple[float, int, dict[str, int]] | None = None  # (time, commands, counters)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

        t = cfg.topics
        tr = transport
        for cam in self.inputs.cameras:
            tr.create_subscription(cam.image, msgs.Image, lambda m, c=cam: self.on_camera(c, m), SENSOR_DATA)
        for cam in self.inputs.depth:
            tr.create_subscription(
                cam.depth, msgs.Image, lambda m, c=cam: self.on_camera_depth(c, m), SENSOR_DATA
            )
            if cam.name in self.inputs.point_cameras:
                tr.create_subscription(
                    cam.camera_info, msgs.CameraInfo, lambda m, c=cam: self.on_camera_info(c, m), SENSOR_DATA
                )
        tr.create_subscription(t.joint_states, msgs.JointState, self.on_joint_states, SENSOR_DATA)
        tr.create_subscription(t.instruction, msgs.String, self.on_instruction, LATCHED)
        tr.create_subscription(t.enable, msgs.Bool, self.on_enable, LATCHED)
        tr.create_subscription(t.enable_auth, msgs.String, self.on_enable_auth, RELIABLE)
        if cfg.use_sim_info:
            tr.create_subscription(t.sim_info, msgs.String, self.on_sim_info, RELIABLE)
        # The command side: planning, the command topics (none in a dry run), the streamed trajectory.
        self.commander = Commander(cfg, self.kin, self.safety, tr, policy, self._record, clock)
        self.pub_status = tr.create_publisher(t.status, msgs.DiagnosticArray, RELIABLE)
        self.pub_challenge = tr.create_publisher(t.enable_challenge, msgs.String, LATCHED)
        if self._token:
            self.pub_challenge.publish(msgs.String(data=self._nonce))
        log.info(
            "inputs: %s | %s | joint states %s | max_skew %.0f ms",
            self.inputs.spec.describe(),
            ", ".join(f"{c.name} <- {c.image}" for c in self.inputs.cameras)
            + "".join(f", depth {c.name} <- {c.depth}" for c in self.inputs.depth),
            t.joint_states,
            cfg.max_skew_s * 1e3,
        )

    # ------------------------------------------------------------------ control step (control thread)
    def _hold(self, reason: str) -> None:
        self.hold_reason = reason
        now = self.clock()
        self.commander.stop(now, self._fresh_joints(now))  # a streamed trajectory with points left stops

    def _fresh_joints(self, now: float) -> np.ndarray | None:
        """The newest joint positions [J], unless older than the watchdog timeout."""
        with self._lock:
            q = self._q
        return q if q is not None and self.watchdog.age(JOINTS, now) <= self.limits.watchdog_timeout else None

    def step(self) -> bool:
        """One control tick; returns whether a command was published."""
        now = self.clock()
        self.ticks += 1
        self._tick_times.append(now)
        try:
            return self._step(now)
        finally:
            self.publish_status()

    def _match(self, now: float) -> tuple[str | None, dict[str, _Msg] | None, float]:
        """The frame set of this step (under the lock): (None, {stream: message}, skew s) or (why not,
        None, best skew s): "skip" (no new image of the first camera), "empty" (a stream has nothing yet),
        "wait" (no set within max_skew_s yet, but the newest image arrived less than max_skew_s ago: its
        partners may still be in flight), "unsynced" (no set within max_skew_s), "stale" (the matched set
        was received longer than the watchdog timeout ago)."""
        pivots = [m for m in reversed(self._buffers[self._pivot]) if m.seq > self._last_used_seq]
        if not pivots:
            return "skip", None, 0.0
        others = [(k, buf) for k, buf in self._buffers.items() if k != self._pivot]
        if any(not buf for _, buf in others):
            return "empty", None, 0.0
        best = float("inf")
        for pm in pivots:  # newest first
            chosen = {self._pivot: pm}
            for k, buf in others:
                chosen[k] = min(buf, key=lambda m, t=pm.stamp: abs(m.stamp - t))
            stamps = [m.stamp for m in chosen.values()]
            skew = max(stamps) - min(stamps)
            best = min(best, skew)
            if skew <= self.cfg.max_skew_s:
                if min(m.received for m in chosen.values()) < now - self.limits.watchdog_timeout:
                    return "stale", None, skew  # older pivots are older still
                return None, chosen, skew
        if now - pivots[0].received < self.cfg.max_skew_s:
            return "wait", None, best  # the rest of the newest set may still be on its way
        return "unsynced", None, best

    def _step(self, now: float) -> bool:
        self.commander.tick(now)  # while a trajectory runs: the safety reference is where it is commanded now
        with self._lock:
            q, width, instruction, enabled, info = (
                self._q,
                self._gripper_width,
                self._instruction,
                self._enabled,
                self._info,
            )
            refused = self._instruction_refused
            mismatch = list(self._mismatch.values())
            infos_ok = all(self._info_ok.values())
            implausible = self.joint_monitor.held(now)
            settled = self.joint_monitor.settled(now)
            needs_reset, self._needs_reset = self._needs_reset, False
            why, frames, skew = self._match(now)
        reason = self.safety.gate(enabled, instruction, self.watchdog.stale(now))
        if reason is None and refused:
            reason = "hold_instruction_too_long"
            self.safety.count(reason)
        if reason is None and (why == "empty" or q is None or (self.cfg.use_sim_info and info is None)):
            reason = "hold_no_observation"
            self.safety.count(reason)
        if reason is None and not infos_ok:
            reason = "hold_no_camera_info"
            self.safety.count(reason)
        if reason is None and width is None:
            reason = "hold_no_gripper_width"
            self.safety.count(reason)
            if self.safety.counters[reason] == 1:
                log.warning(
                    "holding: %s carries no gripper width (needs finite %s); the width is required",
                    self.cfg.topics.joint_states,
                    list(self.limits.finger_joints),
                )
        if reason is None and mismatch:
            reason = "hold_input_mismatch"  # a message that does not fit: held until one that fits arrives
            self.safety.count(reason)
        if reason is None and implausible:
            reason = "hold_implausible_joint_states"
            self.safety.count(reason)
        new_stream = needs_reset or self.safety.q_commanded is None
        if reason is None and new_stream and not settled:
            # A new command stream starts from the measured arm: only once its readings are steady.
            reason = "hold_settling"
            self.safety.count(reason)
        if reason is None and not new_stream:
            off = self.safety.command_disagreement(q)
            if off > self.limits.command_tolerance:
                reason = "hold_command_disagreement"
                self.safety.count(reason)
                if self.safety.counters[reason] <= 3:
                    log.warning(
                        "holding: measured joints %.3f rad from the last command (command_tolerance %.3f): "
                        "blocked arm or implausible joint states; disable and re-enable to start over",
                        off,
                        self.limits.command_tolerance,
                    )
        if reason is None and why in ("skip", "wait"):
            # Latest-observation semantics: each policy step consumes a fresh frame set; a tick without
            # one publishes nothing (the watchdog catches a feed that stopped altogether) but the gripper
            # value of the streamed point the arm is heading to.
            with self._lock:
                self._needs_reset = self._needs_reset or needs_reset
            if not needs_reset:
                self.commander.executing(now)
            self.safety.count("skip_no_new_image" if why == "skip" else "skip_frame_set_incomplete")
            return False
        if reason is None and why is not None:
            reason = {"unsynced": "hold_unsynced_inputs", "stale": "hold_stale_frames"}[why]
            self.safety.count(reason)
            if why == "unsynced":
                self.unsynced_skew_ms = skew * 1e3
                if self.safety.counters[reason] <= 3:
                    log.warning(
                        "holding: no frame set within max_skew_s=%.0f ms (the closest spans %.0f ms)",
                        self.cfg.max_skew_s * 1e3,
                        skew * 1e3,
                    )
        if mismatch and reason in _INPUT_HOLDS:
            # A stream whose messages do not fit: say so rather than "no observation" / "stale".
            reason = "hold_input_mismatch"
            self.safety.count(reason)
        if reason is not None:
            with self._lock:
                self._needs_reset = self._needs_reset or needs_reset
            self._hold(reason)
            return False
        assert frames is not None
        if needs_reset:
            self.commander.reset(now, self._fresh_joints(now))
            self.safety.anchor()
        if self.commander.executing(now):  # the trajectory sent has points left before its re-plan
            self.safety.count("skip_stream_executing")
            self.hold_reason = None
            return False
        pivot = frames[self._pivot]
        self._last_used_seq = pivot.seq
        stamp = pivot.stamp
        q_obs, width_obs = frames[JOINTS].data  # the joint state matched to the images
        if width_obs is None:  # the matched reading had no width (a newer one has): wait for one that does
            self.safety.count("hold_no_gripper_width")
            self._hold("hold_no_gripper_width")
            return False
        obs_pos, obs_quat = self.kin.forward(q_obs)
        state = pack_state(
            ee_position=obs_pos, ee_orientation=obs_quat, gripper_width=width_obs, joint_positions=q_obs
        )
        obs: dict[str, Any] = {
            **{image_key(c): frames[f"image/{c}"].data for c in self.cameras},
            **{depth_key(c.name): frames[f"depth/{c.name}"].data for c in self.inputs.depth},
            STATE_KEY: state,
            INSTRUCTION_KEY: instruction,
        }
        policy, chunker = self.policy, self.commander.chunker

        def policy_step() -> Any:  # runs on the policy thread
            if needs_reset:
                policy.reset()
            if chunker is not None:  # streaming: the whole chunk [T, D]
                return chunker.predict_chunk(obs)
            return policy.select_action(obs, info)

        outcome, action = self.runner.call(policy_step, self.policy_timeout)
        if self.runner.discarded:
            self.safety.counters["policy_late_result_discarded"] = self.runner.discarded
        if outcome != "ok":
            if outcome == "error":  # a policy failure holds the arm; the node keeps running
                self.safety.count("policy_error")
                log.warning("policy raised %s: %s", type(action).__name__, action)
            elif outcome == "late":
                self.safety.count("policy_late")
                if self.safety.counters["policy_late"] <= 3:
                    log.warning(
                        "policy step missed its %.0f ms deadline: holding (its result will be discarded)",
                        self.policy_timeout * 1e3,
                    )
            else:  # the late step is still running: nothing new to run
                self.safety.count("hold_policy_busy")
            if outcome != "error":
                with self._lock:  # the reset (if any) may not have run yet: keep it pending
                    self._needs_reset = self._needs_reset or (needs_reset and outcome == "busy")
            self._hold(
                {"error": "hold_policy_error", "late": "hold_policy_late"}.get(outcome, "hold_policy_busy")
            )
            return False
        try:
            actions = self.commander.actions(action)  # [N, D]
        except (TypeError, ValueError) as e:
            self.safety.count("nonfinite_or_malformed_action")
            log.warning("policy returned no usable actions: %s", e)
            self._hold("hold_unsafe_action")
            return False
        plan, reason = self.commander.plan(actions, q, now)  # every point safety-checked
        if plan is None:
            self._hold(reason or "hold_unsafe_action")
            return False
        self.commander.send(plan, q, stamp, now)
        # From the first camera's stamp (its arrival when the driver left it unset) to the publish.
        latency = (time.time() - stamp) * 1e3
        self.latencies_ms.append(latency)
        self.all_latencies_ms.append(latency)
        self._command_times.append(self.clock())
        self.steps += 1
        self.hold_reason = None
        self.skews_ms.append(skew * 1e3)
        return True

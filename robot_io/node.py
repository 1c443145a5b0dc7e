"""The VLA node: latest observation in, safe commands out; the policy on its own thread under a deadline.

Threads: the executor thread spins the transport (callbacks only decode, validate and store the
latest message, so they never block); the control thread wakes at `rate_hz`, snapshots the latest
observation and runs one step; the policy thread runs `policy.select_action` (and `reset`), one call at a
time, while the control thread waits for it at most `policy_timeout_s`:

    gate (enable, instruction, watchdog, joint-state plausibility, command agreement)
    -> policy.select_action(obs, info) [policy thread, deadline] -> safety.filter_ee_delta
    -> IK (PyBullet, robot URDF) -> safety.filter_joints -> publish TwistStamped, JointTrajectory,
    gripper Float64; DiagnosticArray every tick (rate, latency, hold reason, intervention counters),
    and a one-line status on the console every `status_log_s`.

Any failure on the way (malformed message, stale input, disabled, no instruction, an instruction over
`max_instruction_chars`, joint states that jump or disagree with the command stream, a policy step that
raises or misses its deadline, non-finite action, IK failure) is counted and the step publishes no
command (hold: the arm's trajectory controller keeps its last, safety-passed goal). A late policy step is
never waited for: its result is discarded, and until it returns the ticks hold (`hold_policy_busy`),
so status keeps flowing at the control rate whatever the policy does. Nothing reaches the command
topics without passing `SafetyFilter`, whose joint step caps hold relative to the measured joints and
to the last command sent. Enabling over the wire needs the token (`robot_io.enable`: HMAC of a
challenge); `vla/enable` false from anyone disables. Observation layout follows `vla.core.types`
(images/<camera> uint8 [H, W, 3], depth/<camera> float32 [H, W], state [15], instruction); the state
is packed by `vla.core.state.pack_state` from the joint states (EE pose by forward kinematics, the
gripper width from the finger joints). A joint state without a gripper width holds the arm
(`hold_no_gripper_width`): the width is required, never estimated (the rule of vla.core.state).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from robot_io import convert, enable, msgs
from robot_io.config import NodeConfig
from robot_io.kinematics import Kinematics
from robot_io.safety import SafetyFilter, SafetyLimits, Watchdog
from robot_io.transport import LATCHED, RELIABLE, SENSOR_DATA
from vla.core.state import pack_state
from vla.core.types import INSTRUCTION_KEY, STATE_KEY, depth_key, image_key

log = logging.getLogger(__name__)


def decode_info(text: str) -> dict[str, Any]:
    """Sim-only privileged info (JSON) -> dict; numeric lists become float64 arrays (list of arrays
    for nested lists), as the env hands them to experts."""
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError(f"sim info: expected a JSON object, got {type(raw).__name__}")

    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if (
            isinstance(v, list)
            and v
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        ):
            return np.asarray(v, dtype=np.float64)
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    return conv(raw)


class _Call:
    """One policy step handed to the policy thread."""

    def __init__(self, fn: Callable[[], Any]):
        self.fn, self.done = fn, threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class PolicyRunner:
    """Runs policy calls on one daemon thread (policies need not be thread-safe: every call, reset
    included, happens there). `call(fn, timeout)` returns ("ok", result), ("error", exception),
    ("late", None) when `fn` did not finish in `timeout` seconds (it keeps running; its result is
    discarded), or ("busy", None) while a late call is still running."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._queue: list[_Call] = []
        self._pending: _Call | None = None  # the last call handed over, until claimed
        self._thread: threading.Thread | None = None
        self._closed = False
        self.discarded = 0  # late results thrown away

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                c = self._queue.pop(0)
            try:
                c.result = c.fn()
            except BaseException as e:  # a policy failure is the node's to count, not this thread's end
                c.error = e
            c.done.set()

    def call(self, fn: Callable[[], Any], timeout: float) -> tuple[str, Any]:
        if self._pending is not None:
            if not self._pending.done.is_set():
                return "busy", None
            self._pending = None  # a late call finished after its deadline: its result is stale
            self.discarded += 1
        c = _Call(fn)
        with self._cv:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="vla-policy", daemon=True)
                self._thread.start()
            self._queue.append(c)
            self._cv.notify()
        self._pending = c
        if not c.done.wait(timeout):
            return "late", None
        self._pending = None
        return ("error", c.error) if c.error is not None else ("ok", c.result)

    def close(self, timeout: float = 1.0) -> None:
        """Stop the thread (a call still running is abandoned: the thread is a daemon)."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout)


class VlaNode:
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
        self.watchdog = Watchdog(["image", "joint_states"], limits.watchdog_timeout)
        self._lock = threading.Lock()
        self._image: np.ndarray | None = None  # [H, W, 3] uint8
        self._image_stamp = 0.0  # sender's wall-clock stamp (s)
        self._image_seq = 0  # images received (freshness does not rely on the sender's clock)
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
        self._last_used_seq = 0  # image sequence number the last policy step consumed
        self.steps = 0  # commands published
        self.ticks = 0
        self.hold_reason: str | None = "starting"
        self.latencies_ms: deque[float] = deque(maxlen=2000)
        self._tick_times: deque[float] = deque(maxlen=50)
        self._last_log: tuple[float, int, dict[str, int]] | None = None  # (time, commands, counters)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

        t = cfg.topics
        tr = transport
        tr.create_subscription(t.image, msgs.Image, self.on_image, SENSOR_DATA)
        tr.create_subscription(t.joint_states, msgs.JointState, self.on_joint_states, SENSOR_DATA)
        tr.create_subscription(t.instruction, msgs.String, self.on_instruction, LATCHED)
        tr.create_subscription(t.enable, msgs.Bool, self.on_enable, LATCHED)
        tr.create_subscription(t.enable_auth, msgs.String, self.on_enable_auth, RELIABLE)
        if cfg.use_depth:
            tr.create_subscription(t.depth, msgs.Image, self.on_depth, SENSOR_DATA)
        if cfg.use_sim_info:
            tr.create_subscription(t.sim_info, msgs.String, self.on_sim_info, RELIABLE)
        self.pub_twist = tr.create_publisher(t.ee_delta, msgs.TwistStamped, RELIABLE)
        self.pub_traj = tr.create_publisher(t.joint_trajectory, msgs.JointTrajectory, RELIABLE)
        self.pub_gripper = tr.create_publisher(t.gripper, msgs.Float64, RELIABLE)
        self.pub_status = tr.create_publisher(t.status, msgs.DiagnosticArray, RELIABLE)
        self.pub_challenge = tr.create_publisher(t.enable_challenge, msgs.String, LATCHED)
        if self._token:
            self.pub_challenge.publish(msgs.String(data=self._nonce))

    # ------------------------------------------------------------------ callbacks (executor thread)
    def _malformed(self, kind: str, err: Exception) -> None:
        self.safety.count(f"malformed_{kind}")
        if self.safety.counters[f"malformed_{kind}"] <= 3:
            log.warning("dropped malformed %s: %s", kind, err)

    def _record(self, topic: str, msg: Any) -> None:
        if self.recorder is not None:
            self.recorder.write(topic, msg)

    def on_image(self, msg: msgs.Image) -> None:
        self._record(self.cfg.topics.image, msg)
        try:
            if msg.encoding not in ("rgb8", "bgr8"):
                raise ValueError(f"{self.cfg.topics.image}: expected rgb8/bgr8, got {msg.encoding!r}")
            img = convert.msg_to_image(msg, self.cfg.topics.image)
        except ValueError as e:
            self._malformed("image", e)
            return
        with self._lock:
            self._image, self._image_stamp = img, convert.seconds_from_time(msg.header.stamp)
            self._image_seq += 1
            self.watchdog.feed("image", self.clock())

    def on_depth(self, msg: msgs.Image) -> None:
        self._record(self.cfg.topics.depth, msg)
        try:
            if msg.encoding not in ("32FC1", "16UC1"):
                raise ValueError(f"{self.cfg.topics.depth}: expected 32FC1/16UC1, got {msg.encoding!r}")
            depth = convert.msg_to_image(msg, self.cfg.topics.depth)
        except ValueError as e:
            self._malformed("depth", e)
            return
        with self._lock:
            self._depth = depth

    def on_joint_states(self, msg: msgs.JointState) -> None:
        self._record(self.cfg.topics.joint_states, msg)
        try:
            q = convert.joint_positions(msg, self.limits.joint_names, self.cfg.topics.joint_states)
            tol = 0.5  # rad beyond the URDF limits: a reading further out is a driver/wire error
            if np.any(q < self.kin.lower - tol) or np.any(q > self.kin.upper + tol):
                raise ValueError(f"{self.cfg.topics.joint_states}: implausible joint positions {q.tolist()}")
        except ValueError as e:
            self._malformed("joint_states", e)
            return
        width = convert.gripper_width(msg)
        with self._lock:
            now = self.clock()
            if not self.joint_monitor.accept(q, now):
                # Faster than the arm can move: a spoofer beside the driver, or a faulty driver. The
                # reading is dropped and the arm holds for implausible_hold_s (hold_implausible_joint_states).
                self.safety.count("joint_state_jump")
                if self.safety.counters["joint_state_jump"] <= 3:
                    log.warning(
                        "%s: joint state jumped %.2fx further than the arm can move; holding %.1f s",
                        self.cfg.topics.joint_states,
                        self.joint_monitor.last_jump,
                        self.limits.implausible_hold_s,
                    )
                return
            self._q, self._gripper_width = q, width
            self.watchdog.feed("joint_states", now)

    def on_instruction(self, msg: msgs.String) -> None:
        self._record(self.cfg.topics.instruction, msg)
        text = msg.data.strip()
        limit = self.cfg.max_instruction_chars
        if len(text) > limit:
            # Never truncated (a silently different task); the arm holds until a valid one arrives.
            self.safety.count("instruction_too_long")
            if self.safety.counters["instruction_too_long"] <= 3:
                log.warning(
                    "%s: refused an instruction of %d characters (max_instruction_chars=%d); holding until "
                    "a shorter one arrives",
                    self.cfg.topics.instruction,
                    len(text),
                    limit,
                )
            with self._lock:
                self._instruction_refused = True
            return
        with self._lock:
            self._instruction_refused = False
            if text != self._instruction:
                self._instruction, self._needs_reset = text, True

    def _set_enabled(self, value: bool) -> None:
        with self._lock:
            if value and not self._enabled:
                self._needs_reset = True  # a new command stream: starts from settled joint states
            self._enabled = value

    def on_enable(self, msg: msgs.Bool) -> None:
        """`false` from anyone disables (fail-safe); `true` enables only with allow_unauthenticated_enable."""
        self._record(self.cfg.topics.enable, msg)
        if not msg.data:
            self._set_enabled(False)
        elif self.cfg.allow_unauthenticated_enable:
            self._set_enabled(True)
        else:
            self.safety.count("enable_refused_unauthenticated")
            if self.safety.counters["enable_refused_unauthenticated"] <= 3:
                log.warning(
                    "%s true refused: enabling needs the token (%s; python -m robot_io.enable)",
                    self.cfg.topics.enable,
                    self.cfg.topics.enable_auth if self._token else "no token configured on this node",
                )

    def on_enable_auth(self, msg: msgs.String) -> None:
        """An enable request: HMAC of the current challenge under the token (robot_io.enable)."""
        with self._lock:
            nonce = self._nonce
            ok = self._token is not None and enable.verify(self._token, nonce, msg.data)
            if ok:
                self._nonce = enable.new_nonce()  # the request just seen can never be replayed
        if not ok:
            self.safety.count("enable_refused_bad_token")
            if self.safety.counters["enable_refused_bad_token"] <= 3:
                log.warning(
                    "%s: enable request refused (wrong token or stale challenge)", self.cfg.topics.enable_auth
                )
            return
        self.safety.count("enabled_by_token")
        log.info("enabled by a valid token request")
        self.pub_challenge.publish(msgs.String(data=self._nonce))
        self._set_enabled(True)

    def on_sim_info(self, msg: msgs.String) -> None:
        self._record(self.cfg.topics.sim_info, msg)  # a recording then states each episode's outcome
        try:
            info = decode_info(msg.data)
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            self._malformed("sim_info", e)
            return
        with self._lock:
            episode = info.get("episode")
            if episode != self._episode:
                self._episode, self._needs_reset = episode, True
            self._info = info

    # ------------------------------------------------------------------ control step (control thread)
    def _hold(self, reason: str) -> None:
        self.hold_reason = reason

    def step(self) -> bool:
        """One control tick; returns whether a command was published."""
        now = self.clock()
        self.ticks += 1
        self._tick_times.append(now)
        try:
            return self._step(now)
        finally:
            self.publish_status()

    def _step(self, now: float) -> bool:
        with self._lock:
            image, stamp, depth, q = self._image, self._image_stamp, self._depth, self._q
            seq = self._image_seq
            width, instruction, enabled, info = (
                self._gripper_width,
                self._instruction,
                self._enabled,
                self._info,
            )
            refused = self._instruction_refused
            implausible = self.joint_monitor.held(now)
            settled = self.joint_monitor.settled(now)
            needs_reset, self._needs_reset = self._needs_reset, False
        reason = self.safety.gate(enabled, instruction, self.watchdog.stale(now))
        if reason is None and refused:
            reason = "hold_instruction_too_long"
            self.safety.count(reason)
        if reason is None and (image is None or q is None or (self.cfg.use_sim_info and info is None)):
            reason = "hold_no_observation"
            self.safety.count(reason)
        if reason is None and width is None:
            reason = "hold_no_gripper_width"
            self.safety.count(reason)
            if self.safety.counters[reason] == 1:
                log.warning(
                    "holding: %s carries no gripper width (needs finite %s); the width is required",
                    self.cfg.topics.joint_states,
                    list(convert.FINGER_JOINTS),
                )
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
        if reason is None and seq <= self._last_used_seq:
            # Latest-observation semantics: each policy step consumes a fresh image; a tick without
            # one publishes nothing (the watchdog catches a feed that stopped altogether).
            with self._lock:
                self._needs_reset = self._needs_reset or needs_reset
            self.safety.count("skip_no_new_image")
            return False
        if reason is not None:
            with self._lock:
                self._needs_reset = self._needs_reset or needs_reset
            self._hold(reason)
            return False
        if needs_reset:
            self.safety.anchor()
        self._last_used_seq = seq
        ee_pos, ee_quat = self.kin.forward(q)
        state = pack_state(ee_position=ee_pos, ee_orientation=ee_quat, gripper_width=width, joint_positions=q)
        obs: dict[str, Any] = {
            image_key(self.cfg.camera): image,
            STATE_KEY: state,
            INSTRUCTION_KEY: instruction,
        }
        if depth is not None:
            obs[depth_key(self.cfg.camera)] = depth
        policy = self.policy

        def policy_step() -> Any:  # runs on the policy thread
            if needs_reset:
                policy.reset()
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
        cmd = self.safety.filter_ee_delta(action, ee_pos)
        if cmd is None:
            self._hold("hold_unsafe_action")
            return False
        try:
            q_target = self.kin.ee_delta_to_joints(q, cmd.delta)
        except Exception as e:  # pybullet IK error: hold
            self.safety.count("ik_error")
            log.warning("IK failed: %s", e)
            self._hold("hold_ik_error")
            return False
        q_safe = self.safety.filter_joints(q_target, q)
        if q_safe is None:
            self._hold("hold_unsafe_joints")
            return False
        self._publish_command(cmd.delta, q_safe, cmd.gripper, stamp)
        self.safety.commit(q_safe)
        return True

    def _publish_command(self, delta: np.ndarray, q: np.ndarray, gripper: float, image_stamp: float) -> None:
        t = self.cfg.topics
        # TwistStamped carries the stamp of the image it was computed from (end-to-end traceability);
        # the trajectory's zero stamp means "start now" to ros2_control's JointTrajectoryController.
        twist = convert.twist_stamped_msg(delta, convert.time_from_seconds(image_stamp), frame_id="base")
        traj = msgs.JointTrajectory(
            header=msgs.Header(stamp=msgs.Time(), frame_id="base"),
            joint_names=list(self.limits.joint_names),
            points=[
                msgs.JointTrajectoryPoint(
                    positions=q.tolist(),
                    time_from_start=convert.duration_from_seconds(1.0 / self.cfg.rate_hz),
                )
            ],
        )
        grip = msgs.Float64(data=float(gripper))
        self.pub_twist.publish(twist)
        self.pub_traj.publish(traj)
        self.pub_gripper.publish(grip)
        for topic, m in ((t.ee_delta, twist), (t.joint_trajectory, traj), (t.gripper, grip)):
            self._record(topic, m)
        if image_stamp > 0:  # a camera driver that does not stamp images gives no latency figure
            self.latencies_ms.append((time.time() - image_stamp) * 1e3)
        self.steps += 1
        self.hold_reason = None

    def measured_rate(self) -> float:
        ts = self._tick_times
        return (len(ts) - 1) / (ts[-1] - ts[0]) if len(ts) > 1 and ts[-1] > ts[0] else 0.0

    def publish_status(self) -> None:
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        level = msgs.DIAG_OK if self.hold_reason is None else msgs.DIAG_WARN
        values = {
            "state": self.hold_reason or "commanding",
            "rate_hz": f"{self.measured_rate():.2f}",
            "latency_p50_ms": f"{np.percentile(lat, 50):.2f}",
            "latency_p99_ms": f"{np.percentile(lat, 99):.2f}",
            "commands": str(self.steps),
            "ticks": str(self.ticks),
            "stale_inputs": ",".join(self.watchdog.stale(self.clock())),
            "enable_mode": self.enable_mode,
            "max_joint_jump": f"{self.joint_monitor.max_jump:.2f}",  # in units of the allowed bound
            "transport_errors": str(sum(getattr(self.transport, "errors", {}).values())),
        }
        values.update({k: str(v) for k, v in sorted(self.safety.counters.items())})
        status = msgs.DiagnosticStatus(
            level=level,
            name="vla_node",
            message=values["state"],
            hardware_id=self.limits.name,
            values=[msgs.KeyValue(k, v) for k, v in values.items()],
        )
        arr = msgs.DiagnosticArray(header=msgs.Header(stamp=convert.now_time()), status=[status])
        self.pub_status.publish(arr)
        self._record(self.cfg.topics.status, arr)

    def log_status(self, now: float) -> None:
        """One console line: state, rate, latency, commands and holds since the last line."""
        counters = dict(self.safety.counters)
        last_t, last_steps, last_counters = self._last_log or (now, 0, {})
        self._last_log = (now, self.steps, counters)
        changed = {
            k: v - last_counters.get(k, 0) for k, v in counters.items() if v != last_counters.get(k, 0)
        }
        top = sorted(changed.items(), key=lambda kv: -kv[1])[:4]
        if self.latencies_ms:
            lat = np.array(self.latencies_ms)
            latency = f"p50 {np.percentile(lat, 50):.1f} ms p99 {np.percentile(lat, 99):.1f} ms"
        else:
            latency = "n/a (no command yet)"
        log.info(
            "status: %s | %.1f Hz | latency %s | %d commands (+%d in %.1f s) | %s",
            self.hold_reason or "commanding",
            self.measured_rate(),
            latency,
            self.steps,
            self.steps - last_steps,
            now - last_t,
            ", ".join(f"{k} +{v}" for k, v in top) or "no holds",
        )

    # ------------------------------------------------------------------ threads
    def _spin_loop(self) -> None:
        while not self._stop.is_set():
            self.transport.spin_once(0.05)

    def _control_loop(self) -> None:
        period = 1.0 / self.cfg.rate_hz
        next_t = self.clock()
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # never let one bad tick kill the control thread
                self.safety.count("step_error")
                log.exception("control step failed")
            now = self.clock()
            if self.cfg.status_log_s > 0 and (
                self._last_log is None or now - self._last_log[0] >= self.cfg.status_log_s
            ):
                self.log_status(now)
            if self.cfg.max_steps and self.steps >= self.cfg.max_steps:
                self._stop.set()
                break
            next_t += period
            delay = next_t - self.clock()
            if delay < 0:  # overran: skip missed ticks instead of bursting
                next_t = self.clock()
                delay = 0.0
            self._stop.wait(delay)

    def start(self) -> None:
        self._last_log = (self.clock(), 0, {})  # the first console line after status_log_s
        for target, name in ((self._spin_loop, "vla-executor"), (self._control_loop, "vla-control")):
            th = threading.Thread(target=target, name=name, daemon=True)
            th.start()
            self._threads.append(th)

    def stop(self) -> None:
        self._stop.set()
        wake = getattr(self.transport, "wake", None)
        if wake is not None:
            wake()
        for th in self._threads:
            th.join(timeout=5.0)
        self._threads.clear()
        self.runner.close()
        self.kin.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the node stops by itself (max_steps) or `timeout`; True if it stopped."""
        return self._stop.wait(timeout)

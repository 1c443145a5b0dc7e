"""The VLA node's executor side (robot_io.node): the subscription callbacks that decode, check and store
every input message, one short buffer per stream, so they never block.

Each callback records the message (when a recorder is attached), checks it against what the policy reads
(robot_io.inputs: encoding, image and depth size, intrinsics, joint names) and either stores it with its
header stamp and receipt time (`_Msg`) or marks its topic as misfitting until a fitting message arrives;
instruction, enable (token or plain) and sim-info messages update the node's state under its lock.
`NodeCallbacks` is a base of `robot_io.node.VlaNode`: the state it reads and writes is set up there.
`decode_info` turns the sim's privileged-info JSON into what experts expect.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import numpy as np

from robot_io import convert, enable, msgs
from robot_io.config import CameraTopics
from robot_io.inputs import (
    IMAGE_ENCODINGS,
    camera_info_problem,
    depth_problem,
    image_problem,
    joint_names_problem,
)

log = logging.getLogger("robot_io.node")  # the node's one logger, whichever of its modules logs
JOINTS = "joint_states"  # the joint-state stream's key among the matched streams
HISTORY = {"image": 8, "depth": 8, JOINTS: 256}  # messages kept per stream for the time matching


class _Msg:
    """One received message of a stream: sender stamp (s), node-clock receipt time, sequence, payload."""

    __slots__ = ("stamp", "received", "seq", "data")

    def __init__(self, stamp: float, received: float, seq: int, data: Any):
        self.stamp, self.received, self.seq, self.data = stamp, received, seq, data


def _stamp_seconds(stamp: msgs.Time) -> float:
    """A header stamp in seconds; an unset (zero) stamp counts as now (the message's arrival)."""
    t = convert.seconds_from_time(stamp)
    return t if t > 0 else time.time()


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


class NodeCallbacks:
    """The executor-thread methods of `robot_io.node.VlaNode` (see the module docstring)."""

    def _malformed(self, kind: str, err: Exception) -> None:
        self.safety.count(f"malformed_{kind}")
        if self.safety.counters[f"malformed_{kind}"] <= 3:
            log.warning("dropped malformed %s: %s", kind, err)

    def _record(self, topic: str, msg: Any) -> None:
        if self.recorder is not None:
            self.recorder.write(topic, msg)

    def _misfit(self, topic: str, problem: str) -> None:
        """A message that does not fit what the policy needs: hold until one that fits arrives on `topic`;
        the first time each problem is seen, one line says what was expected and what came."""
        self.safety.count("input_mismatch")
        with self._lock:
            self._mismatch[topic] = problem
        if problem not in self._mismatch_logged and len(self._mismatch_logged) < 50:
            self._mismatch_logged.add(problem)
            log.warning("holding: %s", problem)

    def _store(self, stream: str, topic: str, stamp: msgs.Time, data: Any) -> _Msg:
        """Keep a fitting message in its stream (under the lock); it clears the topic's misfit."""
        now = self.clock()
        self._mismatch.pop(topic, None)
        self._seq += 1
        m = _Msg(_stamp_seconds(stamp), now, self._seq, data)
        self._buffers[stream].append(m)
        self.watchdog.feed(stream, now)
        return m

    def on_camera(self, cam: CameraTopics, msg: msgs.Image) -> None:
        self._record(cam.image, msg)
        problem = image_problem(msg, cam.image, self.inputs.image_size)
        if problem is not None:
            if msg.encoding not in IMAGE_ENCODINGS:
                self.safety.count("malformed_image")  # logged once below, as a misfit
            self._misfit(cam.image, problem)
            return
        try:
            img = convert.msg_to_image(msg, cam.image)
        except ValueError as e:
            self._malformed("image", e)
            return
        with self._lock:
            m = self._store(f"image/{cam.name}", cam.image, msg.header.stamp, img)
            if cam.name == self.cameras[0]:
                self._image, self._image_stamp = img, m.stamp
                self._image_seq += 1

    def on_image(self, msg: msgs.Image) -> None:
        """An image of the first camera (the single-camera layout's `topics.image`)."""
        self.on_camera(self.inputs.cameras[0], msg)

    def on_camera_depth(self, cam: CameraTopics, msg: msgs.Image) -> None:
        self._record(cam.depth, msg)
        problem = depth_problem(msg, cam.depth, self.inputs.point_cameras.get(cam.name))
        if problem is not None:
            self.safety.count("malformed_depth")
            self._misfit(cam.depth, problem)
            return
        try:
            depth = convert.msg_to_image(msg, cam.depth)
        except ValueError as e:
            self._malformed("depth", e)
            return
        with self._lock:
            self._store(f"depth/{cam.name}", cam.depth, msg.header.stamp, depth)
            if cam.name == self.inputs.depth[0].name:
                self._depth = depth

    def on_depth(self, msg: msgs.Image) -> None:
        """A depth image of the first depth camera (the single-camera layout's `topics.depth`)."""
        if self.inputs.depth:
            self.on_camera_depth(self.inputs.depth[0], msg)

    def on_camera_info(self, cam: CameraTopics, msg: msgs.CameraInfo) -> None:
        """CameraInfo of a point-cloud camera: must match the camera model saved with the checkpoint."""
        problem = camera_info_problem(msg, cam.camera_info, self.inputs.point_cameras[cam.name])
        if problem is not None:
            self._misfit(cam.camera_info, problem)
            return
        with self._lock:
            self._mismatch.pop(cam.camera_info, None)
            self._info_ok[cam.name] = True

    def on_joint_states(self, msg: msgs.JointState) -> None:
        topic = self.cfg.topics.joint_states
        self._record(topic, msg)
        problem = joint_names_problem(msg, topic, self.limits.joint_names)
        if problem is not None:
            self.safety.count("malformed_joint_states")
            self._misfit(topic, problem)
            return
        try:
            q = convert.joint_positions(msg, self.limits.joint_names, topic)
            tol = 0.5  # rad beyond the URDF limits: a reading further out is a driver/wire error
            if np.any(q < self.kin.lower - tol) or np.any(q > self.kin.upper + tol):
                raise ValueError(f"{topic}: implausible joint positions {q.tolist()}")
        except ValueError as e:
            self._malformed("joint_states", e)
            return
        width = convert.gripper_width(msg, self.limits.finger_joints)
        with self._lock:
            now = self.clock()
            if not self.joint_monitor.accept(q, now):
                # Faster than the arm can move: a spoofer beside the driver, or a faulty driver. The
                # reading is dropped and the arm holds for implausible_hold_s (hold_implausible_joint_states).
                self.safety.count("joint_state_jump")
                if self.safety.counters["joint_state_jump"] <= 3:
                    log.warning(
                        "%s: joint state jumped %.2fx further than the arm can move; holding %.1f s",
                        topic,
                        self.joint_monitor.last_jump,
                        self.limits.implausible_hold_s,
                    )
                return
            self._q, self._gripper_width = q, width
            self._store(JOINTS, topic, msg.header.stamp, (q, width))

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

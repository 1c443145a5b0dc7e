"""The simulated robot on ROS 2: the PyBullet table-top (`sim`, "vla/Tabletop-v0") behind ROS 2 topics. Per
control tick (`rate_hz`; above 10 runs faster than real time, each tick is one 10 Hz env step) it applies
the joint-trajectory point due and the latest gripper command (env action space `joint_pos`), steps the env
and publishes what a real arm's drivers would, all with the tick's one stamp: for every camera the env
renders (`env.cameras`, plus `camera`) the image (rgb8/bgr8), depth (32FC1 or 16UC1 mm) and camera_info on
its per-camera topics (`cameras` / `depth_topics` / `camera_info_topics`, default camera/<name>/image_raw,
camera/<name>/depth/image_raw, camera/<name>/camera_info; the camera `camera` also on
topics.image/depth/camera_info, the single-camera layout), and joint_states (7 arm joints + 2 finger joints,
each finger at half the gripper width, from `vla.core.state.unpack_state` of the env's state:
`joint_state_from_state`). Until the first command it holds the reset pose. Trajectories follow the
JointTrajectoryController's conventions: one starts on receipt (header stamp 0), a new one replaces whatever
is left of the old, and each env step executes the point the controller is heading to at that moment (the
first whose receipt time + time_from_start lies ahead; so with points every control period, point i on the
i-th step after receipt); when no new trajectory arrives it finishes the points it has and then holds the
last one (for ever: no command timeout). Like a real controller it drops malformed goals (no points, unknown
joints, non-finite positions, time_from_start not increasing: `malformed`) and clips goals beyond the joint
limits to them (`clipped`). It also publishes the instruction (latched) at each episode start, like an
operator; with `episode_enable` it also acts as the operator between trials: `vla/enable` false at an
episode's end, true once the next scene is reset and published, and the env steps only from the episode's
first command (so the node's reset hold does not eat into the episode's steps).

SIMULATION ONLY: with `publish_sim_info` it publishes the env's `info` (privileged object poses etc.) as
JSON in std_msgs/String on `topics.sim_info`, so a scripted expert inside the node (`use_sim_info=true`)
can act; a real robot has no such topic and learned policies never read it.

    robot = SimRobot(cfg, make_transport("dds"))
    results = robot.run()          # [{episode, seed, success, length}, ...]
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from robot_io import convert, msgs
from robot_io.config import CameraTopics, SimRobotConfig, camera_topics
from robot_io.transport import LATCHED, RELIABLE, SENSOR_DATA
from sim.config import env_kwargs
from sim.env import TabletopEnv
from sim.robot import LOWER as ARM_LOWER
from sim.robot import UPPER as ARM_UPPER
from vla.core.state import unpack_state
from vla.core.types import STATE_KEY, depth_key, image_key

log = logging.getLogger(__name__)
ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def joint_state_from_state(state: np.ndarray, stamp: msgs.Time | None = None) -> msgs.JointState:
    """The JointState a Panda's drivers would publish for one state vector [15]: the 7 arm joints, then
    the two finger joints at half the gripper width each (their sum is the width again)."""
    parts = unpack_state(state)
    if parts.joint_positions.shape != (len(ARM_JOINTS),):
        raise ValueError(f"{STATE_KEY}: expected shape (15,) (one frame), got {np.shape(state)}")
    half = float(parts.gripper_width) / 2
    names = list(ARM_JOINTS) + list(convert.FINGER_JOINTS)
    return convert.joint_state_msg(names, np.r_[parts.joint_positions, half, half], stamp=stamp)


def info_to_json(info: dict[str, Any], episode: int) -> str:
    """The env's info dict (numpy inside) -> JSON text, tagged with the episode index."""
    return json.dumps({**_jsonable(info), "episode": int(episode)})


class SimRobot:
    """See the module docstring."""

    def __init__(self, cfg: SimRobotConfig, transport: Any, clock: Callable[[], float] = time.monotonic):
        if cfg.encoding not in ("rgb8", "bgr8") or cfg.depth_encoding not in ("32FC1", "16UC1"):
            raise ValueError(
                f"sim robot: encoding must be rgb8/bgr8 and depth_encoding 32FC1/16UC1, "
                f"got {cfg.encoding!r}/{cfg.depth_encoding!r}"
            )
        if cfg.rate_hz <= 0:
            raise ValueError(f"sim robot: rate_hz must be positive, got {cfg.rate_hz}")
        self.cfg, self.transport, self.clock = cfg, transport, clock
        kwargs = env_kwargs(cfg.env, cfg.task)
        names = list(dict.fromkeys([*kwargs["cameras"], *([cfg.camera] if cfg.camera else [])]))
        if not names:
            raise ValueError("sim robot: no camera to publish (env.cameras is empty and camera='')")
        kwargs.update(cameras=tuple(names), depth=True, action_space="joint_pos")
        # The env class directly (gymnasium.make's TimeLimit would take max_episode_steps away from it).
        self.env = TabletopEnv(**kwargs)
        t = cfg.topics
        # Every camera on its own topics; `camera` also on the single-camera layout's topics.
        self.camera_topics: list[CameraTopics] = [
            camera_topics(c, cfg.cameras, cfg.depth_topics, cfg.camera_info_topics) for c in names
        ]
        if cfg.camera:
            self.camera_topics.append(CameraTopics(cfg.camera, t.image, t.depth, t.camera_info))
        self._pubs = [
            (
                cam,
                transport.create_publisher(cam.image, msgs.Image, SENSOR_DATA),
                transport.create_publisher(cam.depth, msgs.Image, SENSOR_DATA),
                transport.create_publisher(cam.camera_info, msgs.CameraInfo, SENSOR_DATA),
            )
            for cam in self.camera_topics
        ]
        self.pub_joints = transport.create_publisher(t.joint_states, msgs.JointState, SENSOR_DATA)
        self.pub_instruction = transport.create_publisher(t.instruction, msgs.String, LATCHED)
        self.pub_enable = (
            transport.create_publisher(t.enable, msgs.Bool, LATCHED) if cfg.episode_enable else None
        )
        self.pub_sim = (
            transport.create_publisher(t.sim_info, msgs.String, RELIABLE) if cfg.publish_sim_info else None
        )
        transport.create_subscription(t.joint_trajectory, msgs.JointTrajectory, self.on_trajectory, RELIABLE)
        transport.create_subscription(t.gripper, msgs.Float64, self.on_gripper, RELIABLE)
        self._target: np.ndarray | None = None  # [7] the joint positions the next env step goes to
        # The trajectory being executed: (receipt time s, time_from_start [N] s, points [N, 7]); None: hold.
        self._trajectory: tuple[float, np.ndarray, np.ndarray] | None = None
        self._gripper = 1.0
        self.commands = 0
        self.malformed = 0
        self.clipped = 0  # goals beyond the joint limits, clipped

    # ------------------------------------------------------------------ command callbacks
    def on_trajectory(self, msg: msgs.JointTrajectory) -> None:
        try:
            if not msg.points:
                raise ValueError("joint trajectory without points")
            q = np.stack(
                [
                    convert.positions_by_name(msg.joint_names, p.positions, ARM_JOINTS, "joint trajectory")
                    for p in msg.points
                ]
            )  # [N, 7]
            if not np.all(np.isfinite(q)):
                raise ValueError(f"joint trajectory: non-finite positions {q.tolist()}")
            tfs = np.array([p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec for p in msg.points])
            if np.any(np.diff(tfs) <= 0):
                raise ValueError(f"joint trajectory: time_from_start not strictly increasing {tfs.tolist()}")
        except ValueError as e:
            self.malformed += 1
            log.warning("sim robot: dropped joint trajectory: %s", e)
            return
        # Like a real controller, never past the joint limits (a 1e300 goal used to overflow the env's
        # float32 action and crash the robot).
        clipped = np.clip(q, ARM_LOWER, ARM_UPPER)
        if np.any(clipped != q):
            self.clipped += 1
            if self.clipped <= 3:
                log.warning("sim robot: joint trajectory beyond the joint limits, clipped: %s", q.tolist())
        self._trajectory = (self.clock(), tfs, clipped)  # replaces the rest of the one before
        self._target = clipped[0]
        self.commands += 1

    def target_at(self, now: float) -> np.ndarray:
        """The joint positions [7] an env step starting at `now` goes to: the trajectory's first point not
        yet due (receipt + time_from_start > now), or its last once all are; the held pose without one."""
        if self._trajectory is not None:
            received, tfs, points = self._trajectory
            ahead = np.nonzero(received + tfs > now)[0]
            self._target = points[ahead[0]] if ahead.size else points[-1]
        assert self._target is not None
        return self._target

    def on_gripper(self, msg: msgs.Float64) -> None:
        if not np.isfinite(msg.data):
            self.malformed += 1
            return
        self._gripper = float(np.clip(msg.data, 0.0, 1.0))

    # ------------------------------------------------------------------ publishing
    def publish(self, obs: dict[str, Any], info: dict[str, Any], episode: int) -> None:
        stamp = convert.now_time()
        if self.pub_sim is not None:
            self.pub_sim.publish(msgs.String(data=info_to_json(info, episode)))
        self.pub_joints.publish(joint_state_from_state(obs[STATE_KEY], stamp))
        for cam, pub_image, pub_depth, pub_info in self._pubs:
            frame = f"{cam.name}_camera_optical_frame"
            depth = obs[depth_key(cam.name)]
            k = self.env.camera_intrinsics(cam.name)
            pub_info.publish(convert.camera_info_msg(k, depth.shape[1], depth.shape[0], stamp, frame))
            pub_depth.publish(convert.image_to_msg(depth, self.cfg.depth_encoding, stamp, frame))
            pub_image.publish(convert.image_to_msg(obs[image_key(cam.name)], self.cfg.encoding, stamp, frame))

    def _spin_until(self, deadline: float) -> None:
        """Deliver commands until `deadline`; always at least one pass, even when running late."""
        self.transport.spin_once(0.0)
        while (left := deadline - time.monotonic()) > 0:
            self.transport.spin_once(left)

    # ------------------------------------------------------------------ episodes
    def _publish_enable(self, value: bool) -> None:
        if self.pub_enable is not None:
            self.pub_enable.publish(msgs.Bool(data=value))

    def _wait_for_command(self, obs: dict[str, Any], info: dict[str, Any], episode: int) -> float | None:
        """Publish the reset scene every period until a command arrives (at most wait_for_command_s);
        returns the wait in seconds, None when none came."""
        period, start, before = 1.0 / self.cfg.rate_hz, time.monotonic(), self.commands
        end = start + self.cfg.wait_for_command_s
        while self.commands == before and time.monotonic() < end:
            self.transport.spin_once(period)
            self.publish(obs, info, episode)
        return time.monotonic() - start if self.commands > before else None

    def run_episode(self, episode: int) -> dict[str, Any]:
        seed = self.cfg.seed + episode
        period = 1.0 / self.cfg.rate_hz
        if self.cfg.episode_enable:
            # Goals still in flight were computed from the last scene: take them in before the reset.
            self._publish_enable(False)
            self._spin_until(time.monotonic() + max(0.3, 2 * period))
        obs, info = self.env.reset(seed=seed)
        self._target = unpack_state(obs[STATE_KEY]).joint_positions  # [7]: hold the reset pose
        self._trajectory = None
        self._gripper = 1.0
        self.pub_instruction.publish(msgs.String(data=str(obs["instruction"])))
        self.publish(obs, info, episode)
        waited = None
        if self.cfg.episode_enable:
            for _ in range(2):  # the new scene (and instruction) reach the node before it is enabled
                self.transport.spin_once(period)
                self.publish(obs, info, episode)
            self._publish_enable(True)
            waited = self._wait_for_command(obs, info, episode)
            if waited is None:
                log.warning("episode %d: no command within wait_for_command_s; stepping anyway", episode)
        elif episode == 0 and self.cfg.wait_for_command_s > 0:
            waited = self._wait_for_command(obs, info, episode)
        start_commands = self.commands
        length, success = 0, False
        start = time.monotonic()
        next_t = start + period
        while True:
            self._spin_until(next_t)
            next_t = max(next_t + period, time.monotonic())
            target = self.target_at(self.clock())  # the point due now
            action = np.concatenate([target, [self._gripper]]).astype(np.float32)  # [8] joint_pos
            obs, _, terminated, truncated, info = self.env.step(action)
            length += 1
            success = bool(info.get("is_success", False))
            self.publish(obs, info, episode)
            if terminated or truncated:
                break
        if self.cfg.episode_enable:
            self._publish_enable(False)
        return {
            "episode": episode,
            "seed": seed,
            "success": success,
            "length": length,
            "error": info.get("error"),
            "wait_s": None if waited is None else round(waited, 3),  # reset -> first command
            "commands": self.commands - start_commands,  # goals received while the episode stepped
            "duration_s": round(time.monotonic() - start, 3),
        }

    def run(self) -> list[dict[str, Any]]:
        results = []
        episode = 0
        while self.cfg.episodes == 0 or episode < self.cfg.episodes:
            results.append(self.run_episode(episode))
            log.info("episode %d: %s", episode, results[-1])
            episode += 1
        return results

    def close(self) -> None:
        self.env.close()

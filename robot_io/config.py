"""Config schemas of the ROS 2 commands (hydra dataclasses; presets in configs/ros2_*.yaml).

    vla ros2 run policy=expert +policy_kwargs.task=pick robot=panda rate_hz=10
    vla ros2 sim-robot task=pick env.image_size=128 episodes=1 rate_hz=10
    vla import rosbag outputs/bag out=outputs/store

`robot` selects a YAML of the config group configs/robot/ (safety limits, URDF, joint names) and its
fields can be overridden one by one (`robot.max_translation=0.01`). `TopicNames` are the defaults of
docs/ARCHITECTURE.md; every name is remappable (`topics.image=/wrist/color/image_raw`).
`sim_info` is the SIMULATION-ONLY topic on which the sim robot publishes the env's privileged `info`
(JSON in std_msgs/String) for scripted experts; a real robot has no such topic and the node leaves it
unsubscribed unless `use_sim_info=true`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robot_io.safety import SafetyLimits
from sim.config import EnvConfig, TaskConfig
from vla.core.config import register_config


@dataclass
class TopicNames:
    image: str = "camera/color/image_raw"
    depth: str = "camera/depth/image_raw"
    camera_info: str = "camera/depth/camera_info"
    joint_states: str = "joint_states"
    instruction: str = "vla/instruction"
    enable: str = "vla/enable"
    enable_auth: str = "vla/enable_auth"  # std_msgs/String: HMAC of the challenge (robot_io.enable)
    enable_challenge: str = "vla/enable_challenge"  # std_msgs/String, latched: the node's current nonce
    ee_delta: str = "vla/ee_delta"
    joint_trajectory: str = "arm_controller/joint_trajectory"
    gripper: str = "gripper_controller/command"
    status: str = "vla/status"
    sim_info: str = "sim/privileged_info"  # simulation only: the env's info dict as JSON


@register_config("ros2_run")
@dataclass
class NodeConfig:
    """`vla ros2 run`: the VLA node."""

    transport: str = "dds"  # dds | rclpy
    domain_id: int | None = None  # None: $ROS_DOMAIN_ID or 0
    policy: str = "constant"  # any name in the policy registry (vla.core.policy)
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None  # passed to the policy factory as `checkpoint=` when set
    robot: SafetyLimits = field(default_factory=SafetyLimits)  # hydra group configs/robot/: robot=panda
    rate_hz: float = 10.0  # control loop rate (wall clock)
    camera: str = "static"  # observation key images/<camera>
    use_depth: bool = False
    use_sim_info: bool = False  # SIMULATION ONLY: pass sim/privileged_info to the policy as `info`
    instruction: str = ""  # used until one arrives on the instruction topic ("" = wait for one)
    enabled: bool = False  # initial enable state: whoever launches the node may enable it from the start
    # Enabling over the wire needs the token (robot_io.enable): read from this file, else $VLA_ENABLE_TOKEN.
    # Without a token only `enabled=true` at launch enables; vla/enable false always disables.
    enable_token_file: str | None = None
    allow_unauthenticated_enable: bool = False  # SIMULATION / trusted domain only: vla/enable true enables
    policy_timeout_s: float = 0.0  # deadline of one policy step (0 = 0.9 control periods); late = hold
    max_instruction_chars: int = 1000  # a longer instruction is refused (hold until a valid one)
    status_log_s: float = 5.0  # one status line on the console this often (0 = never)
    max_steps: int = 0  # stop after this many published commands (0 = run until interrupted)
    duration_s: float = 0.0  # stop after this many seconds (0 = no limit)
    record: str | None = None  # rosbag2 directory to record the node's topics to
    topics: TopicNames = field(default_factory=TopicNames)


@register_config("ros2_sim_robot")
@dataclass
class SimRobotConfig:
    """`vla ros2 sim-robot`: the PyBullet table-top exposed as a ROS 2 robot.

    `env` and `task` are the simulator's shared config groups (configs/env/, configs/task/: `task=push`,
    `task.split=heldout`, `env.image_size=224`); the sim robot renders only `camera` and always runs
    the env's joint-position action space (commands arrive as joint trajectories)."""

    transport: str = "dds"
    domain_id: int | None = None
    env: EnvConfig = field(default_factory=EnvConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    seed: int = 0
    episodes: int = 1  # episodes to run (0 = forever)
    camera: str = "static"
    encoding: str = "rgb8"  # rgb8 | bgr8
    depth_encoding: str = "32FC1"  # 32FC1 | 16UC1
    rate_hz: float = 10.0  # control steps per wall-clock second (above 10 = faster than real time)
    publish_sim_info: bool = True  # SIMULATION ONLY privileged state for scripted experts
    wait_for_command_s: float = 0.0  # at start, hold until the first command or this many seconds
    result: str | None = None  # write the episode results as JSON here
    topics: TopicNames = field(default_factory=TopicNames)


@register_config("ros2_import_rosbag")
@dataclass
class ImportRosbagConfig:
    """`vla import rosbag BAG out=STORE`: a rosbag2 recording into the episode store."""

    bag: str = "???"
    out: str = "???"
    camera: str = "static"
    rate_hz: float = 10.0  # resample to this control rate (one frame per command)
    robot: SafetyLimits = field(default_factory=SafetyLimits)  # hydra group configs/robot/
    task_label: str = "teleop"  # `task` written into each imported episode's metadata
    topics: TopicNames = field(default_factory=TopicNames)

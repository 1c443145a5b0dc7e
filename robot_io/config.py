"""Config schemas of the ROS 2 commands (hydra dataclasses; presets in configs/ros2_*.yaml).

    vla ros2 run policy=expert +policy_kwargs.task=pick robot=panda rate_hz=10
    vla ros2 sim-robot task=pick env.image_size=128 episodes=1 rate_hz=10
    vla import rosbag outputs/bag out=outputs/store

`robot` selects a YAML of the config group configs/robot/ (safety limits, URDF, joint names) and its
fields can be overridden one by one (`robot.max_translation=0.01`). `TopicNames` are the defaults of
docs/ARCHITECTURE.md; every name is remappable (`topics.instruction=/operator/task`).

Cameras: `cameras` maps each camera (the name a checkpoint reads as images/<camera>) to its image topic,
`cameras={static: camera/static/image_raw, wrist: camera/wrist/image_raw}`; its depth and CameraInfo
topics default to `camera/<name>/depth/image_raw` and `camera/<name>/camera_info` (`depth_topics.<name>=`,
`camera_info_topics.<name>=` remap them). With `cameras` empty the node reads the one camera `camera` on
`topics.image` / `topics.depth` / `topics.camera_info` (the single-camera layout the bag importer and
the latency benchmark use). `configured_cameras` is that rule, shared by the node and the sim robot.
`stream` (StreamConfig) sends an action chunk as one multi-point JointTrajectory re-planned every
`replan_every` points (default: one point per policy step); `dry_run` computes and checks every command but
publishes only diagnostics (robot_io.trajectory). `sim_info` is the SIMULATION-ONLY topic on which the sim
robot publishes the env's privileged `info` (JSON in std_msgs/String) for scripted experts; a real robot has
no such topic and the node leaves it unsubscribed unless `use_sim_info=true`.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def default_image_topic(camera: str) -> str:
    """The per-camera convention for the image topic of `camera`."""
    return f"camera/{camera}/image_raw"


def default_depth_topic(camera: str) -> str:
    return f"camera/{camera}/depth/image_raw"


def default_camera_info_topic(camera: str) -> str:
    return f"camera/{camera}/camera_info"


@dataclass(frozen=True)
class CameraTopics:
    """The topics of one camera: colour image, depth image (metres or mm) and CameraInfo."""

    name: str
    image: str
    depth: str
    camera_info: str


def camera_topics(
    camera: str,
    cameras: Mapping[str, str],
    depth_topics: Mapping[str, str],
    camera_info_topics: Mapping[str, str],
) -> CameraTopics:
    """The topics of `camera` in the per-camera layout: `cameras[camera]` (else the convention
    camera/<name>/image_raw), and its depth / CameraInfo topics (remapped, else the convention)."""
    return CameraTopics(
        camera,
        cameras.get(camera) or default_image_topic(camera),
        depth_topics.get(camera) or default_depth_topic(camera),
        camera_info_topics.get(camera) or default_camera_info_topic(camera),
    )


def configured_cameras(cfg: Any) -> dict[str, CameraTopics]:
    """camera name -> its topics, as a node config (`NodeConfig`) configures them: every camera of
    `cfg.cameras`, or, when that is empty, the single camera `cfg.camera` on `topics.image/depth/
    camera_info`. A camera not in the result has no topic: a policy that reads it cannot be served."""
    if cfg.cameras:
        return {
            c: camera_topics(c, cfg.cameras, cfg.depth_topics, cfg.camera_info_topics) for c in cfg.cameras
        }
    t = cfg.topics
    return {cfg.camera: CameraTopics(cfg.camera, t.image, t.depth, t.camera_info)}


@dataclass
class StreamConfig:
    """How the node sends a policy's actions to the arm's JointTrajectoryController (robot_io.trajectory).

    `points` 1 (the default): one JointTrajectory point per policy step, from `select_action` (whatever
    wrapper the policy has). `points` N > 1: the node asks the policy for its action chunk
    (`predict_chunk`, found behind the chunk wrappers), turns the first N actions into N safety-checked
    joint points with `time_from_start` = (i+1) / point_hz, sends them as one trajectory, and plans the next
    one once `replan_every` points have run (sooner when a trajectory was truncated)."""

    points: int = 1  # points per JointTrajectory (1 = one action per policy step; >1 needs a chunk policy)
    replan_every: int = 1  # plan a new trajectory after this many points have run (1..points)
    point_hz: float = 0.0  # points per second: time_from_start = (i+1)/point_hz (0 = rate_hz)


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
    # camera -> image topic, one per camera the policy reads (a checkpoint: its processor's cameras); empty:
    # the single camera `camera` on topics.image. Depth/CameraInfo topics: depth_topics, camera_info_topics.
    cameras: dict[str, str] = field(default_factory=dict)
    depth_topics: dict[str, str] = field(default_factory=dict)  # default camera/<name>/depth/image_raw
    camera_info_topics: dict[str, str] = field(default_factory=dict)  # default camera/<name>/camera_info
    camera: str = "static"  # with `cameras` empty: the one camera, observation key images/<camera>
    use_depth: bool = False  # also pass depth/<camera> of every camera (point-cloud checkpoints need none)
    # Approximate-time matching: the images (and depth, joint state) of one policy step lie within this many
    # seconds of each other by their header stamps; a set received longer than the watchdog ago is not used.
    max_skew_s: float = 0.05
    image_size: int = 0  # expected square side (px) of every image; 0: the checkpoint's input size; -1: any
    # Where an EE delta is applied: "measured" (the measured EE pose (+) delta) or "commanded" (the last
    # commanded EE pose (+) delta, kept within ee_max_lag m of the measured one, as the simulator's own
    # ee_delta control and Cartesian controllers integrate it; a new command stream restarts it from the
    # measured pose). Either way every joint target then passes the same safety caps.
    ee_target: str = "measured"
    ee_max_lag: float = 0.08
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
    summary: str | None = None  # write the run's figures (latency, rate, interventions, skew) as JSON here
    # Chunks as multi-point trajectories (stream.points, stream.replan_every, stream.point_hz); default: one
    # point per policy step.
    stream: StreamConfig = field(default_factory=StreamConfig)
    # Subscribe, run the policy, compute and safety-check every command, but publish only vla/status (no
    # joint trajectory, EE delta or gripper command): what would have been sent is in the diagnostics.
    dry_run: bool = False
    topics: TopicNames = field(default_factory=TopicNames)


@register_config("ros2_sim_robot")
@dataclass
class SimRobotConfig:
    """`vla ros2 sim-robot`: the PyBullet table-top exposed as a ROS 2 robot.

    `env` and `task` are the simulator's shared config groups (configs/env/, configs/task/: `task=push`,
    `task.split=heldout`, `env.image_size=224`); the sim robot renders every camera of `env.cameras`
    (plus `camera`), each with depth, on its per-camera topics (`cameras`, `depth_topics`,
    `camera_info_topics`; default camera/<name>/...), and `camera` also on topics.image/depth/camera_info
    (the single-camera layout; "" = none). It always runs the env's joint-position action space
    (commands arrive as joint trajectories)."""

    transport: str = "dds"
    domain_id: int | None = None
    env: EnvConfig = field(default_factory=EnvConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    seed: int = 0
    episodes: int = 1  # episodes to run (0 = forever)
    cameras: dict[str, str] = field(
        default_factory=dict
    )  # camera -> image topic (default camera/<name>/image_raw)
    depth_topics: dict[str, str] = field(default_factory=dict)
    camera_info_topics: dict[str, str] = field(default_factory=dict)
    camera: str = "static"  # also published on topics.image/depth/camera_info ("" = not)
    encoding: str = "rgb8"  # rgb8 | bgr8
    depth_encoding: str = "32FC1"  # 32FC1 | 16UC1
    rate_hz: float = 10.0  # control steps per wall-clock second (above 10 = faster than real time)
    publish_sim_info: bool = True  # SIMULATION ONLY privileged state for scripted experts
    wait_for_command_s: float = 0.0  # at start, hold until the first command or this many seconds
    # SIMULATION ONLY, like an operator between trials: at each episode's end publish vla/enable false,
    # reset, then vla/enable true, and step the env only from the episode's first command (at most
    # wait_for_command_s). Needs a node with allow_unauthenticated_enable=true (`vla ros2 eval`).
    episode_enable: bool = False
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

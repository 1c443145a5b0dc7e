"""Launch the VLA node on a Franka Research 3 (franka_ros2) with the parameter YAML configs/ros2_run_fr3.yaml.

    ros2 launch vla_ros2 franka.launch.py checkpoint:=/path/ckpt                  # dry run (the default)
    ros2 launch vla_ros2 franka.launch.py checkpoint:=/path/ckpt dry_run:=false   # live, starts disabled

`config` names the node's parameter YAML, a preset of `vla ros2 run` (configs/ros2_run_<name>.yaml, schema
robot_io.config.NodeConfig): every topic (cameras, /joint_states, /fr3_arm_controller/joint_trajectory,
the gripper bridge's command, vla/status), the rate, the chunk streaming and, through its `robot: fr3`, the
safety limits (configs/robot/fr3.yaml). Copy it to configs/ros2_run_<yours>.yaml to change it, or override
single keys in `extra_args` (space separated, e.g.
extra_args:="topics.joint_trajectory=/my_jtc/joint_trajectory stream.points=4 stream.replan_every=2").
Bring the arm up first (franka_bringup, with fr3_arm_controller active) and the cameras. `dry_run`
defaults to true here: the node subscribes, runs the policy and checks every command but publishes only
vla/status (`ros2 topic echo /vla/status`: dry_run_commands, dry_run_last). Live, the node starts
disabled until the operator enables it with the token (`python -m robot_io.enable`; docs/ros2.md,
"Security").
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

DEFAULTS = {
    "config": "ros2_run_fr3",  # configs/ros2_run_fr3.yaml
    "checkpoint": "",
    "dry_run": "true",
    "enable_token_file": "",
    "extra_args": "",
}


def _nodes(context, *_, **__):
    v = {k: LaunchConfiguration(k).perform(context) for k in DEFAULTS}
    dry = v["dry_run"].lower() in ("1", "true", "yes")
    args = [f"config={v['config']}", f"dry_run={'true' if dry else 'false'}"]
    if v["checkpoint"]:
        args.append(f"checkpoint={v['checkpoint']}")
    if v["enable_token_file"]:
        args.append(f"enable_token_file={v['enable_token_file']}")
    args += v["extra_args"].split()
    return [Node(package="vla_ros2", executable="vla_node", name="vla_node", output="screen", arguments=args)]


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(k, default_value=d) for k, d in DEFAULTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=_nodes)])

"""Launch the VLA node (and, with sim:=true, the simulated robot) on ROS 2.

    ros2 launch vla_ros2 vla.launch.py policy:=vla checkpoint:=/path/ckpt robot:=panda
    ros2 launch vla_ros2 vla.launch.py policy:=expert sim:=true      # whole deploy path, no hardware
    ros2 launch vla_ros2 vla.launch.py policy:=vla checkpoint:=/path/ckpt dry_run:=true   # diagnostics only

A Franka Research 3 has its own launch file with its parameter YAML: franka.launch.py.

Remap the topics to your robot's drivers with the node's `topics.*` overrides in `extra_args`
(space separated), e.g. extra_args:="topics.joint_trajectory=/fr3_arm_controller/joint_trajectory".
In simulation the node is enabled at start and reads the sim-only privileged topic (for experts);
on a real robot it starts disabled until the operator enables it with the token
(`python -m robot_io.enable`; docs/ros2.md, "Security").
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

DEFAULTS = {
    "policy": "constant",
    "checkpoint": "",
    "robot": "panda",
    "rate_hz": "10.0",
    "sim": "false",
    "task": "pick",
    "dry_run": "false",
    "extra_args": "",
}


def _nodes(context, *_, **__):
    v = {k: LaunchConfiguration(k).perform(context) for k in DEFAULTS}
    sim = v["sim"].lower() in ("1", "true", "yes")
    args = [f"policy={v['policy']}", f"robot={v['robot']}", f"rate_hz={v['rate_hz']}"]
    if v["checkpoint"]:
        args.append(f"checkpoint={v['checkpoint']}")
    if v["policy"] == "expert":
        args.append(f"+policy_kwargs.task={v['task']}")
    if sim:
        args += ["use_sim_info=true", "enabled=true"]
    if v["dry_run"].lower() in ("1", "true", "yes"):
        args.append("dry_run=true")
    args += v["extra_args"].split()
    nodes = [
        Node(package="vla_ros2", executable="vla_node", name="vla_node", output="screen", arguments=args)
    ]
    if sim:
        sim_args = [f"task={v['task']}", "episodes=0", f"rate_hz={v['rate_hz']}"]
        nodes.append(
            Node(
                package="vla_ros2",
                executable="sim_robot",
                name="sim_robot",
                output="screen",
                arguments=sim_args,
            )
        )
    return nodes


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(k, default_value=d) for k, d in DEFAULTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=_nodes)])

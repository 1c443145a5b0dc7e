"""`ros2 run vla_ros2 vla_node k=v ... [--ros-args ...]`: the VLA node on rclpy; `sim_robot` likewise.

Arguments before `--ros-args` are the hydra overrides of `vla ros2 run` / `vla ros2 sim-robot`
(configs/ros2_run.yaml, configs/ros2_sim_robot.yaml); ROS arguments (remaps, namespaces) go to
rclpy.init. The transport is forced to rclpy.
"""

from __future__ import annotations

import sys


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        return argv[:i], argv
    return argv, argv


def _run(command: str, argv: list[str] | None) -> int:
    import rclpy

    from vla.commands import ros2 as cli

    argv = list(sys.argv[1:] if argv is None else argv)
    overrides, ros_argv = _split(argv)
    rclpy.init(args=[sys.argv[0], *ros_argv])
    try:
        fn = cli.ros2_run if command == "run" else cli.ros2_sim_robot
        return fn([*overrides, "transport=rclpy"])
    finally:
        if rclpy.ok():
            rclpy.shutdown()


def node_main(argv: list[str] | None = None) -> int:
    return _run("run", argv)


def sim_robot_main(argv: list[str] | None = None) -> int:
    return _run("sim-robot", argv)


if __name__ == "__main__":
    sys.exit(node_main())

"""ROS 2 deployment: message types, transports (Cyclone DDS, rclpy), safety layer, VLA node, sim robot, bags.

Modules (each imported on demand; importing the package pulls in nothing heavy):

    robot_io.msgs             ROS 2 messages as Cyclone DDS structs, byte-compatible with rosbags' CDR
    robot_io.convert          messages <-> numpy (images rgb8/bgr8/32FC1/16UC1, joint states, camera info)
    robot_io.transport        the Transport protocol, QoS profiles, `make_transport("dds" | "rclpy")`
    robot_io.dds              Cyclone DDS transport (topics `rt/<name>`, XCDR1), loopback config
    robot_io.rclpy_transport  the same protocol on a real ROS 2 install (rclpy imported lazily)
    robot_io.safety           the safety layer applied to every command, parameters from configs/robot/
    robot_io.kinematics       PyBullet forward/inverse kinematics and URDF joint limits
    robot_io.node             the VLA node (`vla ros2 run`)
    robot_io.node_callbacks   the node's executor side: input messages decoded, checked, stored
    robot_io.node_runtime     the node's threads (policy, executor, control) and its reports
    robot_io.enable           token (HMAC challenge) enabling of the node: `python -m robot_io.enable`
    robot_io.sim_robot        the simulated robot on ROS 2 (`vla ros2 sim-robot`)
    robot_io.bag              rosbag2 recording and `vla import rosbag`
    robot_io.config / .cli    hydra schemas and the command entries
    robot_io/ros2_pkg/        the colcon package `vla_ros2` (package.xml, launch file, `ros2 run` entries)

User guide: docs/ros2.md.
"""

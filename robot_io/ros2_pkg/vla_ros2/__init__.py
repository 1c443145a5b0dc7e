"""ROS 2 entry points of the VLA stack (see vla_ros2.main)."""

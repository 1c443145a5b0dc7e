"""colcon (ament_python) build of the `vla_ros2` package: `ros2 run vla_ros2 vla_node|sim_robot`.

The node itself lives in the vla-stack distribution (`robot_io`); this package only registers the
executables, the launch file and the package manifest with ROS 2.
"""

from glob import glob

from setuptools import setup

PACKAGE = "vla_ros2"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "vla_node = vla_ros2.main:node_main",
            "sim_robot = vla_ros2.main:sim_robot_main",
        ],
    },
)

"""The colcon package (package.xml, entry points, launch file) and the CLI's bad-input errors."""

import ast
import importlib.util
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from vla import cli

PKG = Path(__file__).resolve().parents[2] / "robot_io" / "ros2_pkg"


def test_package_manifest_and_entry_points():
    root = ET.parse(PKG / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "vla_ros2"
    assert root.find("export/build_type").text == "ament_python"
    deps = {d.text for d in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "trajectory_msgs", "diagnostic_msgs", "geometry_msgs"} <= deps
    r = subprocess.run([sys.executable, "setup.py", "--name"], cwd=PKG, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "vla_ros2"
    spec = importlib.util.spec_from_file_location("vla_ros2_main", PKG / "vla_ros2" / "main.py")
    main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(main)  # importing must not need rclpy
    assert main._split(["policy=x", "--ros-args", "-r", "a:=b"]) == (
        ["policy=x"],
        ["policy=x", "--ros-args", "-r", "a:=b"],
    )
    setup_src = (PKG / "setup.py").read_text()
    for fn in ("node_main", "sim_robot_main"):
        assert f"vla_ros2.main:{fn}" in setup_src and callable(getattr(main, fn))
    for launch in ("vla.launch.py", "franka.launch.py"):
        tree = ast.parse((PKG / "launch" / launch).read_text())
        assert "generate_launch_description" in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    # the Franka launch file takes the parameter YAML by its preset name, and starts as a dry run
    tree = ast.parse((PKG / "launch" / "franka.launch.py").read_text())
    (defaults,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "DEFAULTS"]
    defaults = ast.literal_eval(defaults)
    assert defaults["dry_run"] == "true"
    assert (PKG.parents[1] / "configs" / f"{defaults['config']}.yaml").is_file()


def test_cli_bad_input_is_a_clear_error(capsys, tmp_path):
    assert cli.main(["ros2", "run", "robot=no_such_robot"]) == 2  # an unknown choice: exit 2
    assert "no_such_robot" in capsys.readouterr().err
    assert cli.main(["ros2", "run", "robot.max_translation=-1"]) == 2
    assert "max_translation must be a positive" in capsys.readouterr().err
    assert cli.main(["ros2", "run", "transport=zenoh"]) == 2
    assert "unknown transport" in capsys.readouterr().err
    assert cli.main(["import", "rosbag", str(tmp_path / "missing"), f"out={tmp_path / 's'}"]) == 2
    assert "no metadata.yaml" in capsys.readouterr().err
    assert cli.main(["ros2", "sim-robot", "encoding=mono8"]) == 2
    assert "encoding must be rgb8/bgr8" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0
    assert "ros2 sim-robot" in capsys.readouterr().out

"""What the ROS 2 commands share (vla/commands/ros2.py: `vla ros2 run`, `vla ros2 sim-robot`,
`vla import rosbag`; vla/commands/ros2_eval.py: `vla ros2 eval`): the transport a command opens (the
DDS one on Cyclone's CYCLONEDDS_URI, defaulting to the loopback-only robot_io/cyclonedds_loopback.xml
when unset), the logging set-up, the policy built from the registry, and the argument checks more than
one command runs before it starts anything (transport name, DDS domain id, camera names, finite bounds,
and the robot's URDF, joints and EE link), each raising a bad value as one `ConfigError` line (exit 2).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from robot_io.dds import loopback_config
from robot_io.kinematics import resolve_urdf, urdf_joint_limits
from robot_io.transport import list_transports, make_transport
from vla.core.config import ConfigError, argument_checks, check_number, check_path_name, shown
from vla.core.policy import make_policy


def _dds_env() -> None:
    if "CYCLONEDDS_URI" not in os.environ:
        os.environ["CYCLONEDDS_URI"] = loopback_config()


def _transport(name: str, domain_id: int | None, node_name: str) -> Any:
    if name == "dds":
        _dds_env()
        return make_transport("dds", domain_id=domain_id)
    if name == "rclpy":
        return make_transport("rclpy", node_name=node_name, domain_id=domain_id)
    return make_transport(name)  # raises the clear "unknown transport" error


def build_policy(name: str, kwargs: dict[str, Any], checkpoint: str | None) -> Any:
    """A policy from the registry (an unknown name, or a missing dependency, is the registry's error)."""
    kw = dict(kwargs)
    if checkpoint:
        kw["checkpoint"] = checkpoint
    try:
        return make_policy(name, **kw)
    except TypeError as e:  # a keyword the policy's factory does not take
        raise ValueError(f"policy {name!r}: bad arguments {sorted(kw)}: {e}") from e


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")


def _check_transport(name: str) -> None:
    if name not in list_transports():
        raise ConfigError(
            f"unknown transport {name!r}; choose one of: {', '.join(list_transports())}",
            "transport",
            "unknown-choice",
        )


def check_camera_name(camera: str, key: str = "camera") -> None:
    """A camera name, which becomes the observation key images/<camera> (of a policy, of a store)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", camera):
        raise ConfigError(f"{key}={shown(camera)!r}: expected a name of 1-64 letters, digits, _ or -", key)


def _check_domain(domain_id: int | None) -> None:
    if domain_id is not None:  # null: $ROS_DOMAIN_ID or 0
        check_number(domain_id, "domain_id", 0, 232)  # the DDS domain ids


def _check_at_least(cfg: Any, key: str, low: float, strict: bool) -> None:
    """A finite number >= low (> low when strict): NaN and infinity are refused too (a NaN duration
    passed `>= 0` and ran without end)."""
    check_number(getattr(cfg, key), key, low, low_open=strict)


def check_robot(limits: Any, key: str = "robot") -> None:
    """What `SafetyLimits.validate` leaves: some joints, a joint margin >= 0, and a URDF that exists, is a
    URDF (an XML <robot>) and has the configured joints (with limits) and EE link: else a ConfigError
    before anything loads it (PyBullet's own error is a traceback)."""
    import xml.etree.ElementTree as ET

    if not limits.joint_names:
        raise ConfigError(f"{key}.joint_names: expected the arm's joints, got []", f"{key}.joint_names")
    check_number(limits.joint_margin, f"{key}.joint_margin", 0)
    if not limits.urdf:
        raise ConfigError(f"{key}.urdf: expected a URDF file, got ''", f"{key}.urdf")
    check_path_name(limits.urdf, f"{key}.urdf")
    with argument_checks(f"{key}.urdf", "no-such-path"):
        path = resolve_urdf(limits.urdf)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise ConfigError(f"{key}.urdf={limits.urdf} is not a URDF (XML): {e}", f"{key}.urdf") from e
    if root.tag != "robot":
        raise ConfigError(
            f"{key}.urdf={limits.urdf} is not a URDF: its root element is <{root.tag}>, not <robot>",
            f"{key}.urdf",
        )
    with argument_checks(f"{key}.joint_names"):
        urdf_joint_limits(str(path), limits.joint_names)
    links = sorted(str(link.get("name")) for link in root.iter("link"))
    if limits.ee_link not in links:
        raise ConfigError(
            f"{key}.ee_link={limits.ee_link!r} is not a link of {limits.urdf} ({', '.join(links)})",
            f"{key}.ee_link",
        )

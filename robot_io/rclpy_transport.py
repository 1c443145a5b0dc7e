"""The rclpy transport: the same `Transport` protocol on a real ROS 2 install (rclpy imported lazily).

Used when the node runs inside a colcon workspace (`ros2 run vla_ros2 vla_node`). Messages stay
`robot_io.msgs` dataclasses at the node's boundary; this module converts them field by field to and
from the generated rclpy classes (`sensor_msgs.msg.Image`, ...), which have the same field names.
Importing this module never imports rclpy; constructing `RclpyTransport` does, and raises a clear
ImportError when ROS 2 is not sourced.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any

from robot_io.msgs import message_class, ros_type_name
from robot_io.transport import RELIABLE, QosProfile

log = logging.getLogger(__name__)


def _import_rclpy() -> Any:
    try:
        return importlib.import_module("rclpy")
    except ImportError as e:
        raise ImportError(
            "transport=rclpy needs a sourced ROS 2 install (source /opt/ros/<distro>/setup.bash); "
            "use transport=dds to run without ROS 2"
        ) from e


def rclpy_class(msg_type: type) -> Any:
    """Our message class -> the generated rclpy class ('sensor_msgs/msg/Image' -> sensor_msgs.msg.Image)."""
    pkg, sub, name = ros_type_name(msg_type).split("/")
    return getattr(importlib.import_module(f"{pkg}.{sub}"), name)


def to_rclpy(msg: Any) -> Any:
    out = rclpy_class(type(msg))()
    types = out.get_fields_and_field_types()  # e.g. {'level': 'octet', 'data': 'sequence<uint8>'}
    for f in fields(msg):
        value = getattr(msg, f.name)
        if is_dataclass(value):
            value = to_rclpy(value)
        elif isinstance(value, list) and value and is_dataclass(value[0]):
            value = [to_rclpy(v) for v in value]
        elif types.get(f.name) == "octet" and isinstance(value, int):
            value = bytes([value])  # ROS `byte` is a length-1 bytes object in rclpy
        setattr(out, f.name, value)
    return out


def from_rclpy(obj: Any, msg_type: type) -> Any:
    kwargs = {}
    types = obj.get_fields_and_field_types()
    for f in fields(msg_type):
        value = getattr(obj, f.name)
        kind = types.get(f.name, "")
        if hasattr(value, "get_fields_and_field_types"):
            value = from_rclpy(value, message_class(_ros_name(value)))
        elif kind == "octet":
            value = value[0] if isinstance(value, (bytes, bytearray)) else int(value)
        elif kind in ("sequence<uint8>", "sequence<octet>") or kind.startswith(("uint8[", "octet[")):
            value = bytes(value)
        elif isinstance(value, list) and value and hasattr(value[0], "get_fields_and_field_types"):
            value = [from_rclpy(v, message_class(_ros_name(v))) for v in value]
        elif hasattr(value, "tolist"):  # numpy arrays (fixed-size) and array.array (sequences)
            value = value.tolist()
        elif isinstance(value, (list, tuple)):
            value = list(value)
        kwargs[f.name] = value
    return msg_type(**kwargs)


def _ros_name(obj: Any) -> str:
    module = type(obj).__module__.split(".")  # e.g. std_msgs.msg._header
    return f"{module[0]}/msg/{type(obj).__name__}"


class _RclpyPublisher:
    def __init__(self, pub: Any, topic: str):
        self._pub, self.topic = pub, topic

    def publish(self, msg: Any) -> None:
        self._pub.publish(to_rclpy(msg))


class RclpyTransport:
    """Transport on rclpy: one node, a single-threaded executor driven by `spin_once`."""

    def __init__(self, node_name: str = "vla_node", domain_id: int | None = None):
        rclpy = _import_rclpy()
        self._rclpy = rclpy
        self._qos_mod = importlib.import_module("rclpy.qos")
        if not rclpy.ok():
            rclpy.init(domain_id=domain_id) if domain_id is not None else rclpy.init()
        self.node = rclpy.create_node(node_name)
        self.errors: dict[str, int] = {}

    def _qos(self, qos: QosProfile) -> Any:
        q = self._qos_mod
        return q.QoSProfile(
            depth=qos.depth,
            reliability=q.ReliabilityPolicy.RELIABLE if qos.reliable else q.ReliabilityPolicy.BEST_EFFORT,
            durability=q.DurabilityPolicy.TRANSIENT_LOCAL
            if qos.transient_local
            else q.DurabilityPolicy.VOLATILE,
            history=q.HistoryPolicy.KEEP_LAST,
        )

    def create_publisher(self, topic: str, msg_type: type, qos: QosProfile = RELIABLE) -> _RclpyPublisher:
        return _RclpyPublisher(
            self.node.create_publisher(rclpy_class(msg_type), topic, self._qos(qos)), topic
        )

    def create_subscription(
        self, topic: str, msg_type: type, callback: Callable[[Any], None], qos: QosProfile = RELIABLE
    ) -> None:
        def on_msg(raw: Any) -> None:
            try:
                callback(from_rclpy(raw, msg_type))
            except Exception as e:  # never let a callback take the executor down
                self.errors[topic] = self.errors.get(topic, 0) + 1
                log.warning("callback raised on %s: %s: %s", topic, type(e).__name__, e)

        self.node.create_subscription(rclpy_class(msg_type), topic, on_msg, self._qos(qos))

    def spin_once(self, timeout_s: float) -> int:
        """Run at most one ready callback (rclpy's spin_once); rclpy does not say whether one ran."""
        self._rclpy.spin_once(self.node, timeout_sec=timeout_s)
        return 0

    def close(self) -> None:
        if self.node is not None:
            self.node.destroy_node()
            self.node = None

    def __enter__(self) -> RclpyTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The `Transport` protocol (publish / subscribe / spin), ROS 2-like QoS profiles, and the transport registry.

A transport moves `robot_io.msgs` messages between nodes. Two implementations are named in the
`TRANSPORTS` table (a `vla.core.registry.Registry`, imported on first use): `dds` (Cyclone DDS via the
`cyclonedds` package, ROS 2 wire names; `robot_io.dds`) and `rclpy` (a real ROS 2 install, imported
lazily; `robot_io.rclpy_transport`). Nodes only see this protocol, so the same
node runs inside a ROS 2 workspace or stand-alone on plain DDS.

    with make_transport("dds", domain_id=0) as tr:
        pub = tr.create_publisher("vla/enable", Bool, RELIABLE)
        tr.create_subscription("joint_states", JointState, on_joints, SENSOR_DATA)
        pub.publish(Bool(data=True))
        tr.spin_once(0.1)          # runs ready callbacks on the calling thread

Callbacks run only inside `spin_once` on the caller's thread (like rclpy's single-threaded executor).
A callback that raises is counted per topic in `transport.errors` and logged; spinning continues.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from vla.core.registry import Registry


@dataclass(frozen=True)
class QosProfile:
    """The subset of ROS 2 QoS this stack uses: reliability, history depth, durability."""

    reliable: bool = True
    depth: int = 10
    transient_local: bool = False

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ValueError(f"QosProfile.depth: expected >= 1, got {self.depth}")


# rclpy.qos.qos_profile_sensor_data: best effort, keep last 5, volatile.
SENSOR_DATA = QosProfile(reliable=False, depth=5)
# rclpy's default for publishers/subscriptions: reliable, keep last 10, volatile.
RELIABLE = QosProfile(reliable=True, depth=10)
# Latched-style topics (e.g. camera_info, instruction): reliable, keep last 1, transient local.
LATCHED = QosProfile(reliable=True, depth=1, transient_local=True)

QOS_PROFILES: dict[str, QosProfile] = {"sensor_data": SENSOR_DATA, "reliable": RELIABLE, "latched": LATCHED}


def qos_profile(name: str | QosProfile) -> QosProfile:
    if isinstance(name, QosProfile):
        return name
    if name not in QOS_PROFILES:
        raise ValueError(f"unknown QoS profile {name!r}; expected one of {sorted(QOS_PROFILES)}")
    return QOS_PROFILES[name]


@runtime_checkable
class Publisher(Protocol):
    topic: str

    def publish(self, msg: Any) -> None:
        """Send one message (thread-safe)."""


@runtime_checkable
class Transport(Protocol):
    errors: dict[str, int]

    def create_publisher(self, topic: str, msg_type: type, qos: QosProfile = RELIABLE) -> Publisher:
        """A publisher for the ROS 2 topic `topic` (no `rt/` prefix) carrying `msg_type`."""

    def create_subscription(
        self, topic: str, msg_type: type, callback: Callable[[Any], None], qos: QosProfile = RELIABLE
    ) -> None:
        """Call `callback(msg)` from `spin_once` for each message received on `topic`."""

    def spin_once(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for data, run the ready callbacks; return how many ran."""

    def close(self) -> None:
        """Release every entity; safe to call twice."""


TRANSPORTS: Registry[Callable[..., Transport]] = Registry(
    "transport",
    {
        "dds": "robot_io.dds:DdsTransport",
        "rclpy": "robot_io.rclpy_transport:RclpyTransport",
    },
)


def list_transports() -> list[str]:
    return TRANSPORTS.names()


def make_transport(name: str, **kwargs: Any) -> Any:
    """Instantiate a transport by name; the module is imported only now (rclpy stays optional)."""
    return TRANSPORTS.get(name)(**kwargs)


def spin_until(transport: Any, predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.02) -> bool:
    """Spin until `predicate()` is true or `timeout_s` passes; return whether it became true."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        transport.spin_once(min(step_s, max(0.0, deadline - time.monotonic())))
    return bool(predicate())

"""ROS 2 message types as Cyclone DDS IDL structs, speaking ROS 2's wire conventions without a ROS install.

Each class is a `cyclonedds.idl.IdlStruct` whose DDS type name is the one rmw_cyclonedds/rmw_fastrtps
use (`<pkg>::msg::dds_::<Type>_`) and whose fields are the ROS 2 fields in order, so the XCDR1
little-endian encoding (`msg.serialize()`, 4-byte encapsulation header + body) is byte-for-byte what
`rosbags`' CDR serialiser writes and what a ROS 2 node sends (checked per type in the tests). The
ROS 2 topic `<name>` travels on DDS as `rt/<name>` (see `dds_topic_name`).

    msg = Float64(data=0.5)
    raw = msg.serialize()                     # bytes, rosbag2-compatible CDR
    same = Float64.deserialize(raw)
    ros_type_name(Image)                      # 'sensor_msgs/msg/Image'

`to_rosbags` / `from_rosbags` convert between these dataclasses and rosbags' message objects (used for
bag I/O and in the equality tests). Note: this module does not use postponed annotations because
cyclonedds resolves field types at class-creation time.
"""

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import array, float64, int32, sequence, uint8, uint32


def _dds(ros_type: str) -> str:
    """'sensor_msgs/msg/Image' -> 'sensor_msgs::msg::dds_::Image_' (ROS 2's DDS type name)."""
    pkg, kind, name = ros_type.split("/")
    return f"{pkg}::{kind}::dds_::{name}_"


# ---------------------------------------------------------------- builtin_interfaces / std_msgs
@dataclass
class Time(IdlStruct, typename=_dds("builtin_interfaces/msg/Time")):
    sec: int32 = 0
    nanosec: uint32 = 0


@dataclass
class Duration(IdlStruct, typename=_dds("builtin_interfaces/msg/Duration")):
    sec: int32 = 0
    nanosec: uint32 = 0


@dataclass
class Header(IdlStruct, typename=_dds("std_msgs/msg/Header")):
    stamp: Time = field(default_factory=Time)
    frame_id: str = ""


@dataclass
class String(IdlStruct, typename=_dds("std_msgs/msg/String")):
    data: str = ""


@dataclass
class Bool(IdlStruct, typename=_dds("std_msgs/msg/Bool")):
    data: bool = False


@dataclass
class Float64(IdlStruct, typename=_dds("std_msgs/msg/Float64")):
    data: float64 = 0.0


# ---------------------------------------------------------------- sensor_msgs
@dataclass
class Image(IdlStruct, typename=_dds("sensor_msgs/msg/Image")):
    header: Header = field(default_factory=Header)
    height: uint32 = 0
    width: uint32 = 0
    encoding: str = ""
    is_bigendian: uint8 = 0
    step: uint32 = 0
    data: sequence[uint8] = b""  # bytes on the Python side (see _bytes_fast_path), row-major


@dataclass
class RegionOfInterest(IdlStruct, typename=_dds("sensor_msgs/msg/RegionOfInterest")):
    x_offset: uint32 = 0
    y_offset: uint32 = 0
    height: uint32 = 0
    width: uint32 = 0
    do_rectify: bool = False


@dataclass
class CameraInfo(IdlStruct, typename=_dds("sensor_msgs/msg/CameraInfo")):
    header: Header = field(default_factory=Header)
    height: uint32 = 0
    width: uint32 = 0
    distortion_model: str = ""
    d: sequence[float64] = field(default_factory=list)
    k: array[float64, 9] = field(default_factory=lambda: [0.0] * 9)  # 3x3 row-major intrinsics
    r: array[float64, 9] = field(default_factory=lambda: [0.0] * 9)
    p: array[float64, 12] = field(default_factory=lambda: [0.0] * 12)  # 3x4 projection
    binning_x: uint32 = 0
    binning_y: uint32 = 0
    roi: RegionOfInterest = field(default_factory=RegionOfInterest)


@dataclass
class JointState(IdlStruct, typename=_dds("sensor_msgs/msg/JointState")):
    header: Header = field(default_factory=Header)
    name: sequence[str] = field(default_factory=list)
    position: sequence[float64] = field(default_factory=list)
    velocity: sequence[float64] = field(default_factory=list)
    effort: sequence[float64] = field(default_factory=list)


# ---------------------------------------------------------------- geometry_msgs
@dataclass
class Vector3(IdlStruct, typename=_dds("geometry_msgs/msg/Vector3")):
    x: float64 = 0.0
    y: float64 = 0.0
    z: float64 = 0.0


@dataclass
class Twist(IdlStruct, typename=_dds("geometry_msgs/msg/Twist")):
    linear: Vector3 = field(default_factory=Vector3)
    angular: Vector3 = field(default_factory=Vector3)


@dataclass
class TwistStamped(IdlStruct, typename=_dds("geometry_msgs/msg/TwistStamped")):
    header: Header = field(default_factory=Header)
    twist: Twist = field(default_factory=Twist)


# ---------------------------------------------------------------- trajectory_msgs
@dataclass
class JointTrajectoryPoint(IdlStruct, typename=_dds("trajectory_msgs/msg/JointTrajectoryPoint")):
    positions: sequence[float64] = field(default_factory=list)
    velocities: sequence[float64] = field(default_factory=list)
    accelerations: sequence[float64] = field(default_factory=list)
    effort: sequence[float64] = field(default_factory=list)
    time_from_start: Duration = field(default_factory=Duration)


@dataclass
class JointTrajectory(IdlStruct, typename=_dds("trajectory_msgs/msg/JointTrajectory")):
    header: Header = field(default_factory=Header)
    joint_names: sequence[str] = field(default_factory=list)
    points: sequence[JointTrajectoryPoint] = field(default_factory=list)


# ---------------------------------------------------------------- diagnostic_msgs
@dataclass
class KeyValue(IdlStruct, typename=_dds("diagnostic_msgs/msg/KeyValue")):
    key: str = ""
    value: str = ""


@dataclass
class DiagnosticStatus(IdlStruct, typename=_dds("diagnostic_msgs/msg/DiagnosticStatus")):
    level: uint8 = 0  # ROS `byte`: OK=0, WARN=1, ERROR=2, STALE=3
    name: str = ""
    message: str = ""
    hardware_id: str = ""
    values: sequence[KeyValue] = field(default_factory=list)


@dataclass
class DiagnosticArray(IdlStruct, typename=_dds("diagnostic_msgs/msg/DiagnosticArray")):
    header: Header = field(default_factory=Header)
    status: sequence[DiagnosticStatus] = field(default_factory=list)


def _bytes_fast_path(cls: type[IdlStruct], member: str) -> None:
    """Carry a `sequence<uint8>` member as Python `bytes` (one memcpy) instead of a list of ints.

    The declared type stays `sequence[uint8]`, so the XTypes type object (what Cyclone announces in
    discovery) is ROS 2's `sequence<uint8>`; only the Python (de)serialiser of that member is swapped for
    cyclonedds' `bytes` machine, whose wire format is identical (uint32 length, then the raw bytes)."""
    from cyclonedds.idl._machinery import BytesMachine

    idl = cls.__idl__
    idl.populate()
    for machine in (idl.v1_machine, idl.v2_machine):
        if member not in machine.members_machines:
            raise RuntimeError(f"{cls.__name__}: no member {member!r} to specialise")
        machine.members_machines[member] = BytesMachine()


_bytes_fast_path(Image, "data")

DIAG_OK, DIAG_WARN, DIAG_ERROR, DIAG_STALE = 0, 1, 2, 3

# ROS 2 type name -> class, for every message type this package speaks.
MESSAGE_TYPES: dict[str, type[IdlStruct]] = {
    "builtin_interfaces/msg/Time": Time,
    "builtin_interfaces/msg/Duration": Duration,
    "std_msgs/msg/Header": Header,
    "std_msgs/msg/String": String,
    "std_msgs/msg/Bool": Bool,
    "std_msgs/msg/Float64": Float64,
    "sensor_msgs/msg/Image": Image,
    "sensor_msgs/msg/RegionOfInterest": RegionOfInterest,
    "sensor_msgs/msg/CameraInfo": CameraInfo,
    "sensor_msgs/msg/JointState": JointState,
    "geometry_msgs/msg/Vector3": Vector3,
    "geometry_msgs/msg/Twist": Twist,
    "geometry_msgs/msg/TwistStamped": TwistStamped,
    "trajectory_msgs/msg/JointTrajectoryPoint": JointTrajectoryPoint,
    "trajectory_msgs/msg/JointTrajectory": JointTrajectory,
    "diagnostic_msgs/msg/KeyValue": KeyValue,
    "diagnostic_msgs/msg/DiagnosticStatus": DiagnosticStatus,
    "diagnostic_msgs/msg/DiagnosticArray": DiagnosticArray,
}
_NAME_OF: dict[str, str] = {cls.__idl_typename__: name for name, cls in MESSAGE_TYPES.items()}


def ros_type_name(cls_or_msg: Any) -> str:
    """The ROS 2 type name ('pkg/msg/Type') of a message class or instance."""
    cls = cls_or_msg if isinstance(cls_or_msg, type) else type(cls_or_msg)
    name = _NAME_OF.get(getattr(cls, "__idl_typename__", ""))
    if name is None or MESSAGE_TYPES[name] is not cls:
        raise ValueError(
            f"{cls.__name__} is not a robot_io message type; expected one of {sorted(MESSAGE_TYPES)}"
        )
    return name


def message_class(ros_type: str) -> type[IdlStruct]:
    if ros_type not in MESSAGE_TYPES:
        raise ValueError(f"unknown ROS 2 message type {ros_type!r}; expected one of {sorted(MESSAGE_TYPES)}")
    return MESSAGE_TYPES[ros_type]


def dds_topic_name(topic: str) -> str:
    """ROS 2 topic -> DDS topic: '/joint_states' or 'joint_states' -> 'rt/joint_states'."""
    name = topic.strip("/")
    if not name or "//" in name or any(c.isspace() for c in name):
        raise ValueError(f"invalid ROS 2 topic name {topic!r}")
    return "rt/" + name


def to_rosbags(msg: Any, typestore: Any) -> Any:
    """Convert one of our messages into the equivalent rosbags message object of `typestore`."""
    ros_type = ros_type_name(msg)
    _, fdefs = typestore.fielddefs[ros_type]
    kwargs = {name: _value_to_rosbags(getattr(msg, name), desc, typestore) for name, desc in fdefs}
    return typestore.types[ros_type](**kwargs)


def _value_to_rosbags(value: Any, desc: tuple[Any, Any], typestore: Any) -> Any:
    """Convert one field value following its rosbags field description (nodetype, details)."""
    kind, details = desc
    if kind.name == "NAME":
        return to_rosbags(value, typestore)
    if kind.name == "BASE":
        return value
    (sub_kind, sub_details), _ = details  # ARRAY or SEQUENCE of (sub_kind, sub_details)
    if sub_kind.name == "NAME":
        return [to_rosbags(v, typestore) for v in value]
    base = sub_details[0]
    if base == "string":
        return list(value)
    dtype = np.uint8 if base in ("uint8", "byte", "char") else np.dtype(base)
    if isinstance(value, bytes):
        return np.frombuffer(value, dtype=dtype).copy()
    return np.asarray(value, dtype=dtype)


def from_rosbags(obj: Any) -> Any:
    """Convert a rosbags message object (from `deserialize_cdr`) into our message class."""
    cls = message_class(obj.__msgtype__)
    kwargs = {}
    for f in fields(cls):
        value = getattr(obj, f.name)
        if hasattr(value, "__msgtype__"):
            value = from_rosbags(value)
        elif isinstance(value, np.ndarray):
            value = value.tobytes() if value.dtype == np.uint8 else [float(v) for v in value]
        elif isinstance(value, list):
            value = [from_rosbags(v) if hasattr(v, "__msgtype__") else v for v in value]
        kwargs[f.name] = value
    return cls(**kwargs)

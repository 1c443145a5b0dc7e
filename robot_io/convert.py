"""Conversions between ROS 2 messages (`robot_io.msgs`) and the numpy arrays of `vla.core.types`.

Images: `rgb8`/`bgr8` <-> uint8 [H, W, 3] RGB (bgr8 is swapped to RGB on decode), `32FC1` <-> float32
[H, W] metres, `16UC1` <-> uint16 millimetres decoded to float32 [H, W] metres (0 = no reading -> 0.0).
Every decode validates the message: known encoding, `step >= width * bytes_per_pixel`, and
`len(data) == height * step`; a mismatch raises ValueError naming the topic and the expected sizes,
so the node can count and drop it. Big-endian payloads are byte-swapped.

    msg = image_to_msg(rgb, "rgb8", stamp=now_time(), frame_id="camera")
    rgb = msg_to_image(msg, topic="camera/color/image_raw")    # [H, W, 3] uint8, a fresh array
    q = joint_positions(js, ["panda_joint1", ...])               # [J] float64, ValueError on NaN/unknown
    w = gripper_width(js)                                        # metres, or None without finger joints
    ok = recorded_success(bag["sim/privileged_info"], t0, t1)    # True/False as recorded, None: unknown

An episode's outcome is never assumed: `recorded_success` reads it from what the recording holds (the
simulator's info messages, `is_success`), and says None (unknown) where the recording states none, as a
real robot's bag does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from robot_io.msgs import (
    CameraInfo,
    Duration,
    Header,
    Image,
    JointState,
    Time,
    Twist,
    TwistStamped,
    Vector3,
)

# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "32FC1": (np.dtype(np.float32), 1),
    "16UC1": (np.dtype(np.uint16), 1),
}


def time_from_seconds(t: float) -> Time:
    sec = int(np.floor(t))
    return Time(sec=sec, nanosec=min(int(round((t - sec) * 1e9)), 999_999_999))


def seconds_from_time(stamp: Time) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def now_time() -> Time:
    """Wall-clock stamp (ROS 2 uses the system clock by default)."""
    return time_from_seconds(time.time())


def duration_from_seconds(t: float) -> Duration:
    if not np.isfinite(t) or t < 0:
        raise ValueError(f"duration: expected a finite non-negative number of seconds, got {t}")
    sec = int(np.floor(t))
    return Duration(sec=sec, nanosec=min(int(round((t - sec) * 1e9)), 999_999_999))


def image_to_msg(array: np.ndarray, encoding: str, stamp: Time | None = None, frame_id: str = "") -> Image:
    """Encode an image array: rgb8/bgr8 take uint8 [H, W, 3] RGB; 32FC1 float32 [H, W] metres;
    16UC1 float [H, W] metres (stored as uint16 millimetres) or a uint16 [H, W] array as is."""
    if encoding not in ENCODINGS:
        raise ValueError(f"image encoding {encoding!r} not supported; expected one of {sorted(ENCODINGS)}")
    dtype, channels = ENCODINGS[encoding]
    arr = np.asarray(array)
    want = "[H, W, 3]" if channels == 3 else "[H, W]"
    if (channels == 3 and (arr.ndim != 3 or arr.shape[2] != 3)) or (channels == 1 and arr.ndim != 2):
        raise ValueError(f"image_to_msg({encoding}): expected shape {want}, got {arr.shape}")
    if encoding == "bgr8":
        arr = arr[..., ::-1]
    if encoding == "16UC1" and arr.dtype != np.uint16:
        mm = np.nan_to_num(np.asarray(arr, dtype=np.float64) * 1000.0, nan=0.0, posinf=0.0, neginf=0.0)
        arr = np.clip(np.round(mm), 0, 65535)
    arr = np.ascontiguousarray(arr, dtype=dtype.newbyteorder("<"))
    h, w = arr.shape[:2]
    step = w * channels * dtype.itemsize
    return Image(
        header=Header(stamp=stamp or Time(), frame_id=frame_id),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=step,
        data=arr.tobytes(),
    )


def check_image_msg(msg: Image, topic: str = "image") -> tuple[np.dtype, int]:
    """Validate encoding and sizes; return (dtype, channels). Raises ValueError naming `topic`."""
    if msg.encoding not in ENCODINGS:
        raise ValueError(
            f"{topic}: image encoding {msg.encoding!r} not supported; expected one of {sorted(ENCODINGS)}"
        )
    dtype, channels = ENCODINGS[msg.encoding]
    row = msg.width * channels * dtype.itemsize
    if msg.height == 0 or msg.width == 0:
        raise ValueError(f"{topic}: empty image {msg.height}x{msg.width}")
    if msg.step < row:
        raise ValueError(f"{topic}: step {msg.step} < width*bytes_per_pixel = {row} ({msg.encoding})")
    if len(msg.data) != msg.height * msg.step:
        raise ValueError(
            f"{topic}: data has {len(msg.data)} bytes, expected height*step = {msg.height}*{msg.step} "
            f"= {msg.height * msg.step}"
        )
    return dtype, channels


def msg_to_image(msg: Image, topic: str = "image") -> np.ndarray:
    """Decode: rgb8/bgr8 -> uint8 [H, W, 3] RGB; 32FC1/16UC1 -> float32 [H, W] metres. A fresh array."""
    dtype, channels = check_image_msg(msg, topic)
    order = ">" if msg.is_bigendian else "<"
    raw = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
    row = raw[:, : msg.width * channels * dtype.itemsize]
    arr = np.ascontiguousarray(row).view(dtype.newbyteorder(order))
    if channels == 3:
        arr = arr.reshape(msg.height, msg.width, 3)
        if msg.encoding == "bgr8":
            arr = arr[..., ::-1]
        return np.ascontiguousarray(arr, dtype=np.uint8)
    arr = arr.reshape(msg.height, msg.width)
    if msg.encoding == "16UC1":
        return arr.astype(np.float32) / np.float32(1000.0)
    return arr.astype(np.float32)


def camera_info_msg(
    intrinsics: np.ndarray, width: int, height: int, stamp: Time | None = None, frame_id: str = ""
) -> CameraInfo:
    """CameraInfo for an undistorted pinhole camera with intrinsics K [3, 3]."""
    k = np.asarray(intrinsics, dtype=np.float64)
    if k.shape != (3, 3) or not np.all(np.isfinite(k)):
        raise ValueError(f"camera intrinsics: expected finite shape (3, 3), got {k.shape}")
    p = np.zeros((3, 4))
    p[:, :3] = k
    return CameraInfo(
        header=Header(stamp=stamp or Time(), frame_id=frame_id),
        height=int(height),
        width=int(width),
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=k.reshape(-1).tolist(),
        r=np.eye(3).reshape(-1).tolist(),
        p=p.reshape(-1).tolist(),
    )


def intrinsics_from_msg(msg: CameraInfo) -> np.ndarray:
    """K [3, 3] float64 from a CameraInfo."""
    k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    if not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise ValueError(f"camera_info: invalid intrinsics K={k.tolist()}")
    return k


def joint_state_msg(
    names: Sequence[str],
    positions: np.ndarray,
    velocities: np.ndarray | None = None,
    stamp: Time | None = None,
) -> JointState:
    pos = np.asarray(positions, dtype=np.float64).reshape(-1)
    if len(names) != pos.shape[0]:
        raise ValueError(f"joint_state_msg: {len(names)} names but positions shape {pos.shape}")
    vel = [] if velocities is None else np.asarray(velocities, dtype=np.float64).reshape(-1).tolist()
    return JointState(
        header=Header(stamp=stamp or Time()), name=list(names), position=pos.tolist(), velocity=vel
    )


def positions_by_name(
    msg_names: Sequence[str], positions: Sequence[float], names: Sequence[str], topic: str
) -> np.ndarray:
    """`positions` (parallel to `msg_names`) reordered to `names`: [J] float64; extra joints are ignored.

    Raises ValueError for a name/position length mismatch, a missing joint or a non-finite value."""
    if len(msg_names) != len(positions):
        raise ValueError(f"{topic}: {len(msg_names)} names but {len(positions)} positions")
    index = {n: i for i, n in enumerate(msg_names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise ValueError(f"{topic}: missing joints {missing}; message has {list(msg_names)}")
    q = np.array([positions[index[n]] for n in names], dtype=np.float64)
    if not np.all(np.isfinite(q)):
        raise ValueError(f"{topic}: non-finite joint positions {q.tolist()}")
    return q


def joint_positions(msg: JointState, names: Sequence[str], topic: str = "joint_states") -> np.ndarray:
    """A JointState's positions [J] float64 in the order of `names` (see `positions_by_name`)."""
    return positions_by_name(msg.name, msg.position, names, topic)


# The Panda's two prismatic finger joints (each 0..0.04 m); their sum is the gripper width.
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")


def gripper_width(msg: JointState, fingers: Sequence[str] = FINGER_JOINTS) -> float | None:
    """The measured gripper width in metres: the sum of the finger joint positions of a JointState.

    None when the message lacks a finger joint, has a non-finite one, or its names and positions differ
    in length. There is no fallback: a missing width stays missing (the rule of vla.core.state)."""
    if len(msg.name) != len(msg.position) or not all(f in msg.name for f in fingers):
        return None
    width = float(sum(msg.position[msg.name.index(f)] for f in fingers))
    return width if np.isfinite(width) else None


def twist_stamped_msg(action: np.ndarray, stamp: Time | None = None, frame_id: str = "") -> TwistStamped:
    """EE delta [>=6] (dx, dy, dz, droll, dpitch, dyaw per step) -> TwistStamped (values as given)."""
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.shape[0] < 6:
        raise ValueError(f"twist_stamped_msg: expected an action of at least 6 dims, got {a.shape}")
    return TwistStamped(
        header=Header(stamp=stamp or Time(), frame_id=frame_id),
        twist=Twist(linear=Vector3(*a[:3].tolist()), angular=Vector3(*a[3:6].tolist())),
    )


def recorded_success(
    messages: Sequence[tuple[int, Any]], start_ns: int, stop_ns: int | None = None
) -> bool | None:
    """An episode's outcome as a recording states it, else None (unknown): `is_success` of the last
    message stamped in [start_ns, stop_ns) (stop None: to the end) on the simulator's info topic
    (`sim/privileged_info`: a String holding the env's info dict as JSON, published after every step).

    `messages` are (t_ns, msg) pairs in time order, as `robot_io.bag.read_bag` returns them. Pass the next
    episode's start as `stop_ns`: the info of an episode's last step is stamped after its last frame.
    A message that is not JSON, not an object or has no boolean `is_success` says nothing and is skipped;
    no message in the span means the recording does not say (None), never success."""
    outcome: bool | None = None
    for t_ns, msg in messages:
        if t_ns < start_ns or (stop_ns is not None and t_ns >= stop_ns):
            continue
        try:
            info = json.loads(getattr(msg, "data", ""))
        except (TypeError, ValueError):
            continue
        value = info.get("is_success") if isinstance(info, dict) else None
        if isinstance(value, bool):
            outcome = value
    return outcome

"""rosbag2 recording (MCAP or sqlite3, via `rosbags`) and bag -> episode store conversion.

Recording: `BagRecorder.write(topic, msg)` serialises with our XCDR1 encoder (byte-identical to
rosbags' CDR, see tests) and appends to a rosbag2 directory that `ros2 bag play` reads. The bag is
written to a temporary sibling and renamed into place on `close()`, so a crash never leaves a
half-written bag under the final name. Thread-safe (the node records from two threads).

Import (`vla import rosbag BAG out=STORE`): one episode per instruction segment. Actions come from the
recorded commands when the bag has them (`vla/ee_delta` TwistStamped + gripper Float64, one frame per
command, observation = latest image/joint state before it), otherwise from the joint states resampled
at `rate_hz` (action = EE pose difference to the next frame, gripper from the finger width), which is
how teleoperated real-robot data (no policy commands) becomes training data. The state is packed by
`vla.core.state.pack_state` exactly as the node packs it (EE pose by forward kinematics, the gripper
width from the finger joints of the same JointState); a joint state without a gripper width is an
error naming the topic and the time: the width is required, never estimated (vla.core.state).

    with BagRecorder("outputs/run1_bag", storage="mcap") as rec:
        rec.write("joint_states", js_msg)
    n = import_rosbag("outputs/run1_bag", "outputs/store.zarr", camera="static")
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pybullet as p
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from tqdm import tqdm

from robot_io import convert, msgs
from robot_io.config import TopicNames
from vla.core.state import pack_state
from vla.core.types import (
    ACTION_KEY,
    ACTION_NAMES,
    STATE_KEY,
    STATE_NAMES,
    FeatureSpec,
    FeatureType,
    depth_key,
    image_key,
)
from vla.data.store import EpisodeStore

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


def typestore() -> Any:
    return get_typestore(Stores.ROS2_HUMBLE)


class BagRecorder:
    """Append messages to a rosbag2 directory; finalised atomically by `close()`."""

    def __init__(self, path: str | os.PathLike, storage: str = "mcap"):
        if storage not in STORAGES:
            raise ValueError(f"bag storage {storage!r} not supported; expected one of {sorted(STORAGES)}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"bag already exists: {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._ts = typestore()
        self._writer = Writer(self._tmp, version=8, storage_plugin=STORAGES[storage])
        self._writer.open()
        self._conns: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.count = 0

    def write(self, topic: str, msg: Any, timestamp_ns: int | None = None) -> None:
        data = msg.serialize()
        t = time.time_ns() if timestamp_ns is None else int(timestamp_ns)
        name = "/" + topic.strip("/")
        with self._lock:
            if self._writer is None:
                return
            conn = self._conns.get(name)
            if conn is None:
                conn = self._writer.add_connection(name, msgs.ros_type_name(msg), typestore=self._ts)
                self._conns[name] = conn
            self._writer.write(conn, t, data)
            self.count += 1

    def close(self) -> Path:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
                os.replace(self._tmp, self.path)
        return self.path

    def __enter__(self) -> BagRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_bag(path: str | os.PathLike) -> dict[str, list[tuple[int, Any]]]:
    """All messages of the types we know, by topic (no leading '/'): [(t_ns, msg), ...] in time order."""
    path = Path(path)
    if not (path / "metadata.yaml").is_file():
        raise FileNotFoundError(f"rosbag2 directory not found (no metadata.yaml): {path}")
    ts = typestore()
    out: dict[str, list[tuple[int, Any]]] = {}
    with Reader(path) as reader:
        conns = [c for c in reader.connections if c.msgtype in msgs.MESSAGE_TYPES]
        for conn, t, raw in reader.messages(connections=conns):
            msg = msgs.from_rosbags(ts.deserialize_cdr(raw, conn.msgtype))
            out.setdefault(conn.topic.strip("/"), []).append((t, msg))
    for v in out.values():
        v.sort(key=lambda x: x[0])
    return out


def _latest_before(series: list[tuple[int, Any]], times: np.ndarray) -> np.ndarray:
    """Index of the last message at or before each time [T] (-1 if none)."""
    stamps = np.array([t for t, _ in series], dtype=np.int64)
    return np.searchsorted(stamps, times, side="right") - 1


def _euler_delta(q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """Rotation from quaternion q0 to q1 (xyzw) as roll/pitch/yaw about the base axes [3]."""
    inv = p.invertTransform((0, 0, 0), q0.tolist())[1]
    _, dq = p.multiplyTransforms((0, 0, 0), q1.tolist(), (0, 0, 0), inv)
    return np.array(p.getEulerFromQuaternion(dq), dtype=np.float64)


def bag_to_episodes(
    bag: dict[str, list[tuple[int, Any]]],
    topics: TopicNames,
    camera: str,
    kin: Any,
    rate_hz: float = 10.0,
) -> list[tuple[dict[str, np.ndarray], dict[str, Any]]]:
    """Decoded bag -> [(frames, episode_meta)]; frames hold images/<camera> [T,H,W,3], state [T,15],
    action [T,7] (and depth/<camera> [T,H,W] when the bag has depth)."""
    images = bag.get(topics.image.strip("/"), [])
    joints = bag.get(topics.joint_states.strip("/"), [])
    if not images or not joints:
        raise ValueError(
            f"bag: needs messages on {topics.image!r} and {topics.joint_states!r}; has {sorted(bag)}"
        )
    commands = bag.get(topics.ee_delta.strip("/"), [])
    grips = bag.get(topics.gripper.strip("/"), [])
    depth = bag.get(topics.depth.strip("/"), [])
    start = max(images[0][0], joints[0][0])
    if commands:
        times = np.array([t for t, _ in commands if t >= start], dtype=np.int64)
    else:
        end = min(images[-1][0], joints[-1][0])
        times = np.arange(start, end + 1, int(1e9 / rate_hz), dtype=np.int64)
    if times.size < 1:
        raise ValueError("bag: no frames after the first image and joint state")
    ii, jj = _latest_before(images, times), _latest_before(joints, times)
    names = list(kin.joint_names)
    q = np.stack([convert.joint_positions(joints[j][1], names, topics.joint_states) for j in jj])  # [T, J]
    width = np.array([_gripper_width(joints[j], topics.joint_states) for j in jj])  # [T]
    poses = [kin.forward(qi) for qi in q]
    pos = np.stack([x for x, _ in poses])  # [T, 3]
    quat = np.stack([r for _, r in poses])  # [T, 4]
    state = pack_state(ee_position=pos, ee_orientation=quat, gripper_width=width, joint_positions=q)
    gripper = np.ones(times.size)
    if grips:
        gi = _latest_before(grips, times)
        gripper = np.array([grips[g][1].data if g >= 0 else 1.0 for g in gi])
    if commands:
        cmd = [m for t, m in commands if t >= start]
        lin = np.array([[c.twist.linear.x, c.twist.linear.y, c.twist.linear.z] for c in cmd])
        ang = np.array([[c.twist.angular.x, c.twist.angular.y, c.twist.angular.z] for c in cmd])
    else:  # finite differences to the next frame; the last frame repeats zero motion
        lin = np.diff(pos, axis=0, append=pos[-1:])
        ang = np.stack([_euler_delta(quat[t], quat[min(t + 1, len(quat) - 1)]) for t in range(len(quat))])
        if not grips:
            gripper = (width > 0.5 * max(np.max(width), 1e-6)).astype(np.float64)
    action = np.concatenate([lin, ang, gripper[:, None]], axis=1).astype(np.float32)  # [T, 7]
    frames = {
        image_key(camera): np.stack([convert.msg_to_image(images[i][1], topics.image) for i in ii]),
        STATE_KEY: state,
        ACTION_KEY: action,
    }
    if depth:
        di = np.maximum(_latest_before(depth, times), 0)
        frames[depth_key(camera)] = np.stack([convert.msg_to_image(depth[d][1], topics.depth) for d in di])
    instr = bag.get(topics.instruction.strip("/"), [])
    segments = _segments(times, instr)
    episodes = []
    for lo, hi, text in segments:
        ep = {k: v[lo:hi] for k, v in frames.items()}
        episodes.append((ep, {"instruction": text, "source": "rosbag", "start_ns": int(times[lo])}))
    return episodes


def _gripper_width(stamped: tuple[int, Any], topic: str) -> float:
    """The measured width of one recorded joint state; a missing one is an error (vla.core.state)."""
    t_ns, msg = stamped
    width = convert.gripper_width(msg)
    if width is None:
        raise ValueError(
            f"bag: {topic} message at t={t_ns} ns has no gripper width (needs finite "
            f"{list(convert.FINGER_JOINTS)}; has {list(msg.name)}): the state's gripper_width is required, "
            f"never estimated (see vla.core.state)"
        )
    return width


def _segments(times: np.ndarray, instr: list[tuple[int, Any]]) -> list[tuple[int, int, str]]:
    """Split frame times [T] at instruction changes -> [(start, stop, instruction)], empty ones dropped."""
    if not instr:
        return [(0, len(times), "")]
    idx = _latest_before(instr, times)
    out, lo = [], 0
    for t in range(1, len(times) + 1):
        if t == len(times) or idx[t] != idx[lo]:
            text = instr[idx[lo]][1].data if idx[lo] >= 0 else instr[0][1].data
            out.append((lo, t, text))
            lo = t
    return out


def import_rosbag(
    bag_path: str | os.PathLike,
    out: str | os.PathLike,
    kin: Any,
    camera: str = "static",
    rate_hz: float = 10.0,
    task: str = "teleop",
    topics: TopicNames | None = None,
) -> list[int]:
    """Convert a rosbag2 recording into episodes of the episode store at `out` (created if missing).
    Returns the new episode indices."""
    episodes = bag_to_episodes(read_bag(bag_path), topics or TopicNames(), camera, kin, rate_hz)
    first = episodes[0][0]
    image, depth = image_key(camera), depth_key(camera)
    features = {
        ACTION_KEY: FeatureSpec(FeatureType.ACTION, (len(ACTION_NAMES),), "float32", ACTION_NAMES),
        STATE_KEY: FeatureSpec(FeatureType.STATE, (len(STATE_NAMES),), "float32", STATE_NAMES),
        image: FeatureSpec(FeatureType.VISUAL, tuple(first[image].shape[1:]), "uint8"),
    }
    if depth in first:
        features[depth] = FeatureSpec(FeatureType.DEPTH, tuple(first[depth].shape[1:]), "float32")
    out = Path(out)
    if (out / "zarr.json").is_file():
        store = EpisodeStore.open(out, mode="a")
    else:
        meta = {"action_space": "ee_delta", "source": "rosbag", "bag": str(bag_path)}
        store = EpisodeStore.create(out, features, fps=rate_hz, meta=meta)
    ids = []
    for frames, meta in tqdm(episodes, desc="import rosbag", unit="episode"):
        ids.append(store.append_episode(frames, {**meta, "task": task, "success": True, "split": "train"}))
    return ids

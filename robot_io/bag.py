"""rosbag2 recording (MCAP or sqlite3, via `rosbags`) and bag -> episode store conversion.

Recording: `BagRecorder.write(topic, msg)` serialises with our XCDR1 encoder (byte-identical to
rosbags' CDR, see tests) and appends to a rosbag2 directory that `ros2 bag play` reads. The bag is
finalised as it grows, so a crash loses at most the last `segment_s` (0.5 s by default). Every message
goes to two storage files at once: a short one, closed (indexed) every `segment_s`, moved into the bag
and listed in `metadata.yaml` (rewritten atomically each time), and a long one, closed every `merge_s`
(60 s), which then replaces the short ones it covers in the listing (they are deleted), so an hour
is about 60 files, not 7200 (a split bag, as `ros2 bag record --max-bag-duration` writes). Open files
live in hidden sub-directories; a background thread closes them on time even when no message arrives.
At every moment the directory is a valid bag of what was finalised; a SIGKILLed recording imports as it
is (`read_bag` warns that it was not closed). Thread-safe (the node records from two threads).

Integrity: every storage file the recorder finalises gets the MCAP chunk CRCs filled in (rosbags writes
0, "none") and a crc32 of the whole file, listed in `metadata.yaml` (`custom_data.vla_crc32`). `read_bag`
checks both before decoding anything (`verify_bag`): a corrupted bag is refused with one line naming the
file and, for a damaged MCAP chunk, its byte offset; it is never imported with wrong values, and its
messages are not dropped either (a chunk holds up to 1 MB of messages: the gap would be silent). Bags
from `ros2 bag record` carry MCAP chunk CRCs of their own and are checked the same way; bags with no
checksum at all (sqlite3 from elsewhere, older recordings) are read with a warning that they cannot be
verified.

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

import json
import logging
import os
import shutil
import struct
import threading
import time
import zlib
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pybullet as p
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from ruamel.yaml import YAML
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

log = logging.getLogger(__name__)
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


def typestore() -> Any:
    return get_typestore(Stores.ROS2_HUMBLE)


class _Segment:
    """One open storage file: its rosbags Writer (in a hidden sub-directory of the bag) and connections."""

    def __init__(self, writer: Writer):
        self.writer, self.conns, self.count, self.started = writer, {}, 0, time.monotonic()


class BagRecorder:
    """Append messages to a rosbag2 directory that is a valid bag at every moment (see the module
    docstring): short files every `segment_s`, merged into one file per `merge_s`."""

    def __init__(
        self, path: str | os.PathLike, storage: str = "mcap", segment_s: float = 0.5, merge_s: float = 60.0
    ):
        if storage not in STORAGES:
            raise ValueError(f"bag storage {storage!r} not supported; expected one of {sorted(STORAGES)}")
        if not (0 < segment_s <= merge_s):
            raise ValueError(f"bag: expected 0 < segment_s <= merge_s, got {segment_s}, {merge_s}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"bag already exists: {self.path}")
        self.storage, self.segment_s, self.merge_s = storage, float(segment_s), float(merge_s)
        self._ts = typestore()
        self._msgdefs: dict[str, tuple[str, str]] = {}  # ROS type -> (message definition, RIHS01 hash)
        self._lock = threading.Lock()
        self._short: _Segment | None = None
        self._long: _Segment | None = None
        self._merged: list[
            dict[str, Any]
        ] = []  # finalised long files: {"file": files entry, "topics": [...]}
        self._recent: list[dict[str, Any]] = []  # finalised short files since the last merge
        self._names = 0
        self._closed = False
        self.count = 0
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None  # started with the first message

    def _start(self) -> None:
        """Create the bag directory (on the first message, so a node that fails to start leaves none)."""
        self.path.mkdir(parents=True)
        self._write_metadata(complete=False)
        self._flusher = threading.Thread(target=self._flush_loop, name="bag-flusher", daemon=True)
        self._flusher.start()

    # ---------------------------------------------------------------- storage files
    def _open(self) -> _Segment:
        tmp = self.path / f".open_{self._names}"
        self._names += 1
        writer = Writer(tmp, version=8, storage_plugin=STORAGES[self.storage])
        writer.open()
        return _Segment(writer)

    def _finish(self, seg: _Segment, name: str) -> dict[str, Any]:
        """Close `seg`, move its storage file into the bag as `name`; its metadata entries."""
        seg.writer.close()
        tmp = seg.writer.path
        info = YAML(typ="safe").load((tmp / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        (src,) = info["relative_file_paths"]
        dst = f"{name}{Path(src).suffix}"
        if self.storage == "mcap":
            seal_mcap(tmp / src)
        crc = file_crc32(tmp / src)
        os.replace(tmp / src, self.path / dst)
        shutil.rmtree(tmp, ignore_errors=True)
        (entry,) = info["files"]
        return {"file": {**entry, "path": dst}, "topics": info["topics_with_message_count"], "crc32": crc}

    def _drop(self, seg: _Segment) -> None:
        seg.writer.close()
        shutil.rmtree(seg.writer.path, ignore_errors=True)

    def _rotate_short(self) -> None:
        seg, self._short = self._short, None
        self._recent.append(
            self._finish(seg, f"{self.path.name}_{len(self._merged)}_recent_{len(self._recent)}")
        )
        self._write_metadata(complete=False)

    def _merge(self) -> None:
        """Close the long file (it holds every message since the last merge) and list it instead of the
        short files it covers; the open short file holds only messages the long one has: dropped."""
        seg, self._long = self._long, None
        self._merged.append(self._finish(seg, f"{self.path.name}_{len(self._merged)}"))
        if self._short is not None:
            short, self._short = self._short, None
            self._drop(short)
        covered, self._recent = self._recent, []
        self._write_metadata(complete=False)
        for e in covered:  # only after the listing no longer names them
            (self.path / e["file"]["path"]).unlink(missing_ok=True)

    def _write_metadata(self, complete: bool) -> None:
        listed = self._merged + self._recent
        files = [e["file"] for e in listed]
        topics: dict[tuple[str, str], dict[str, Any]] = {}
        for e in listed:
            for t in e["topics"]:
                meta = t["topic_metadata"]
                agg = topics.setdefault(
                    (meta["name"], meta["type"]), {"topic_metadata": meta, "message_count": 0}
                )
                agg["message_count"] += t["message_count"]
        starts = [f["starting_time"]["nanoseconds_since_epoch"] for f in files]
        ends = [t0 + f["duration"]["nanoseconds"] for t0, f in zip(starts, files)]
        start = min(starts) if starts else 0
        info = {
            "version": 8,
            "storage_identifier": self.storage,
            "relative_file_paths": [f["path"] for f in files],
            "duration": {"nanoseconds": (max(ends) - start) if ends else 0},
            "starting_time": {"nanoseconds_since_epoch": start},
            "message_count": sum(f["message_count"] for f in files),
            "topics_with_message_count": list(topics.values()),
            "compression_format": "",
            "compression_mode": "",
            "files": files,
            "custom_data": {
                "vla_recorder": "complete" if complete else "recording",
                CRC_KEY: json.dumps({e["file"]["path"]: f"{e['crc32']:08x}" for e in listed}),
            },
            "ros_distro": "rosbags",
        }
        text = StringIO()
        yaml = YAML(typ="safe")
        yaml.default_flow_style = False
        yaml.dump({"rosbag2_bagfile_information": info}, text)
        tmp = self.path / ".metadata.yaml.tmp"
        tmp.write_text(text.getvalue())
        os.replace(tmp, self.path / "metadata.yaml")  # atomic: readers see the old or the new listing

    def _due(self) -> None:
        """Close what is due (called with the lock held)."""
        now = time.monotonic()
        if self._long is not None and self._long.count and now - self._long.started >= self.merge_s:
            self._merge()
        elif self._short is not None and self._short.count and now - self._short.started >= self.segment_s:
            self._rotate_short()

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.segment_s / 5):
            with self._lock:
                if not self._closed:
                    self._due()

    def _put(self, seg: _Segment, name: str, msgtype: str, t: int, data: bytes) -> None:
        conn = seg.conns.get(name)
        if conn is None:
            if msgtype not in self._msgdefs:
                msgdef, _ = self._ts.generate_msgdef(msgtype, ros_version=2)
                self._msgdefs[msgtype] = (msgdef, self._ts.hash_rihs01(msgtype))
            msgdef, rihs01 = self._msgdefs[msgtype]
            conn = seg.conns[name] = seg.writer.add_connection(name, msgtype, msgdef=msgdef, rihs01=rihs01)
        seg.writer.write(conn, t, data)
        seg.count += 1

    # ---------------------------------------------------------------- public
    def write(self, topic: str, msg: Any, timestamp_ns: int | None = None) -> None:
        data = msg.serialize()
        t = time.time_ns() if timestamp_ns is None else int(timestamp_ns)
        name = "/" + topic.strip("/")
        msgtype = msgs.ros_type_name(msg)
        with self._lock:
            if self._closed:
                return
            if self._flusher is None:
                self._start()
            self._due()
            if self._long is None:
                self._long = self._open()
            if self._short is None:
                self._short = self._open()
            self._put(self._long, name, msgtype, t, data)
            self._put(self._short, name, msgtype, t, data)
            self.count += 1

    def close(self) -> Path:
        """Finalise everything and mark the bag complete; safe to call twice."""
        self._stop.set()
        if self._flusher is not None and self._flusher.is_alive():
            self._flusher.join(timeout=5.0)
        with self._lock:
            if not self._closed:
                self._closed = True
                self.path.mkdir(parents=True, exist_ok=True)  # no message at all: an empty bag
                if self._long is not None:
                    self._merge()
                self._write_metadata(complete=True)
        return self.path

    def __enter__(self) -> BagRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------- integrity
CRC_KEY = "vla_crc32"  # metadata.yaml custom_data: JSON {relative file path: crc32 of the file, 8 hex digits}
_MCAP_MAGIC = b"\x89MCAP0\r\n"
_OP_CHUNK, _OP_DATA_END = 0x06, 0x0F
# a chunk record: start time, end time, uncompressed size (uint64), uncompressed crc32 (uint32)
_CHUNK_HEAD = struct.Struct("<QQQI")


def file_crc32(path: str | os.PathLike, block: int = 1 << 22) -> int:
    """crc32 of a whole file, read in blocks."""
    crc = 0
    with open(path, "rb") as f:
        while data := f.read(block):
            crc = zlib.crc32(data, crc)
    return crc


def _mcap_chunks(f: Any, name: str) -> Any:
    """Yield (offset of the chunk record, offset of its crc field, recorded crc, compression, records
    bytes) for every chunk of the MCAP data section of the open file `f`; ValueError for a malformed
    record structure (the damage then lies in the record headers)."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(0)
    if f.read(8) != _MCAP_MAGIC:
        raise ValueError(f"{name}: not an MCAP file (bad magic at byte 0)")
    pos = 8
    while pos + 9 <= size:
        f.seek(pos)
        op, length = struct.unpack("<BQ", f.read(9))
        if op == _OP_DATA_END or op == 0x02:  # end of the data section (or the footer of an empty file)
            return
        if pos + 9 + length > size:
            raise ValueError(
                f"{name}: MCAP record at byte {pos} runs past the end of the file ({size} bytes)"
            )
        if op == _OP_CHUNK:
            head = f.read(_CHUNK_HEAD.size + 4)
            _, _, usize, crc = _CHUNK_HEAD.unpack(head[: _CHUNK_HEAD.size])
            (clen,) = struct.unpack("<I", head[_CHUNK_HEAD.size :])
            compression = f.read(clen).decode("utf-8", errors="replace")
            (rlen,) = struct.unpack("<Q", f.read(8))
            if rlen > length:
                raise ValueError(f"{name}: MCAP chunk at byte {pos} declares more data than it holds")
            records = f.read(rlen)
            if compression:
                from rosbags.rosbag2.storage_mcap import DECOMPRESSORS

                try:
                    records = DECOMPRESSORS[compression](records, usize)
                except Exception as e:  # a damaged compressed stream
                    raise ValueError(f"{name}: MCAP chunk at byte {pos} does not decompress ({e})") from None
            yield pos, pos + 9 + 24, crc, records
        pos += 9 + length
    raise ValueError(f"{name}: MCAP data section has no end record (truncated at {size} bytes)")


def seal_mcap(path: str | os.PathLike) -> int:
    """Fill in the crc32 of every chunk of a closed MCAP file whose crc is 0 ("not computed", what the
    rosbags writer leaves), in place. Returns the number of chunks sealed."""
    n = 0
    with open(path, "r+b") as f:
        for _, at, crc, records in list(_mcap_chunks(f, str(path))):
            if crc == 0:
                f.seek(at)
                f.write(struct.pack("<I", zlib.crc32(records)))
                n += 1
        f.flush()
        os.fsync(f.fileno())
    return n


def _mcap_problem(file: Path) -> tuple[str | None, int]:
    """(the first damaged chunk of an MCAP file as a phrase, or None; the number of chunks with a crc)."""
    checked = 0
    with open(file, "rb") as f:
        for pos, _, crc, records in _mcap_chunks(f, file.name):
            if crc == 0:
                continue
            checked += 1
            got = zlib.crc32(records)
            if got != crc:
                return (
                    f"the MCAP chunk at byte {pos} does not match its crc32 (recorded {crc:08x}, "
                    f"read {got:08x})"
                ), checked
    return None, checked


def verify_bag(path: str | os.PathLike, info: dict[str, Any] | None = None) -> None:
    """Check every storage file of a rosbag2 directory against its checksums: the crc32 the recorder
    listed in metadata.yaml and the MCAP chunk CRCs. ValueError (one line naming the bag, the file and,
    for a damaged MCAP chunk, its byte offset) when anything differs; a warning when nothing can be
    checked."""
    path = Path(path)
    if info is None:
        info = (YAML(typ="safe").load((path / "metadata.yaml").read_text()) or {}).get(
            "rosbag2_bagfile_information", {}
        )
    try:
        recorded = json.loads(((info.get("custom_data") or {}).get(CRC_KEY)) or "{}")
    except ValueError:
        raise ValueError(f"bag {path}: metadata.yaml custom_data.{CRC_KEY} is not valid JSON") from None
    files = [str(f) for f in info.get("relative_file_paths") or []]
    verified = 0
    for rel in files:
        file = path / rel
        if not file.is_file():
            raise ValueError(f"bag {path}: {rel} is listed in metadata.yaml but missing")
        where = f"bag {path}: {rel} is corrupted"
        if file.suffix == ".mcap":
            try:
                problem, checked = _mcap_problem(file)
            except (ValueError, struct.error, OSError) as e:
                raise ValueError(f"{where}: {e}") from None
            if problem is not None:
                raise ValueError(f"{where}: {problem}; refusing to import it")
            verified += checked > 0
        want = recorded.get(rel)
        if want is not None:
            got = file_crc32(file)
            if f"{got:08x}" != want:
                raise ValueError(
                    f"{where}: the file does not match the crc32 recorded when it was closed "
                    f"(recorded {want}, read {got:08x}); refusing to import it"
                )
            verified += 1
    if files and not verified:
        log.warning(
            "%s carries no checksums (not recorded by this stack): its contents cannot be verified", path
        )


def read_bag(path: str | os.PathLike) -> dict[str, list[tuple[int, Any]]]:
    """All messages of the types we know, by topic (no leading '/'): [(t_ns, msg), ...] in time order."""
    path = Path(path)
    if not (path / "metadata.yaml").is_file():
        raise FileNotFoundError(f"rosbag2 directory not found (no metadata.yaml): {path}")
    info = (YAML(typ="safe").load((path / "metadata.yaml").read_text()) or {}).get(
        "rosbag2_bagfile_information", {}
    )
    verify_bag(path, info)
    ts = typestore()
    out: dict[str, list[tuple[int, Any]]] = {}
    with Reader(path) as reader:
        if info.get("custom_data") and info["custom_data"].get("vla_recorder") == "recording":
            log.warning(
                "%s was not closed (the recorder crashed or was killed): reading the %.1f s it had "
                "finalised (%d messages)",
                path,
                info["duration"]["nanoseconds"] * 1e-9,
                info["message_count"],
            )
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
    topics = topics or TopicNames()
    bag = read_bag(bag_path)
    episodes = bag_to_episodes(bag, topics, camera, kin, rate_hz)
    # success as the recording states it (the simulator's info topic), else unknown (None): never assumed
    infos = bag.get(topics.sim_info.strip("/"), [])
    starts = [meta["start_ns"] for _, meta in episodes] + [None]
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
    for k, (frames, meta) in enumerate(tqdm(episodes, desc="import rosbag", unit="episode")):
        success = convert.recorded_success(infos, starts[k], starts[k + 1])
        ids.append(store.append_episode(frames, {**meta, "task": task, "success": success, "split": "train"}))
    return ids

"""rosbag2 recording (MCAP and sqlite3), conversion of a teleop bag (no commands) into episodes, and the
missing-gripper-width rule of the importer (an error naming the topic and the time)."""

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from robot_io import convert, msgs
from robot_io.bag import BagRecorder, import_rosbag, read_bag
from robot_io.kinematics import Kinematics
from robot_io.safety import load_limits
from vla.core.state import unpack_state
from vla.data.store import EpisodeStore

LIMITS = load_limits("panda")
HOME_Q = np.array([0.0, -0.25, 0.0, -2.3, 0.0, 2.05, 0.785])
NAMES = list(LIMITS.joint_names) + list(convert.FINGER_JOINTS)


def _teleop_bag(path, storage, fingers_from=0):
    """3 s of a teleoperated arm at 30 Hz: joint 1 sweeps, gripper closes at 1.5 s, new task at 2 s.
    Joint states before message `fingers_from` carry the arm joints only (no gripper width)."""
    with BagRecorder(path, storage=storage) as rec:
        for k in range(90):
            t = 1_000_000_000 + k * 33_333_333
            q = HOME_Q + np.array([0.3 * k / 90, 0, 0, 0, 0, 0, 0])
            width = 0.04 if k < 45 else 0.01
            stamp = convert.time_from_seconds(t * 1e-9)
            if k >= fingers_from:
                js = convert.joint_state_msg(NAMES, np.r_[q, width / 2, width / 2], stamp=stamp)
            else:
                js = convert.joint_state_msg(NAMES[:7], q, stamp=stamp)
            rec.write("joint_states", js, t)
            img = np.full((8, 8, 3), k, np.uint8)
            rec.write("camera/color/image_raw", convert.image_to_msg(img, "bgr8", stamp), t + 1000)
            if k in (0, 60):
                rec.write("vla/instruction", msgs.String(data="pick" if k == 0 else "place"), t)
        return rec.count


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_record_is_a_valid_rosbag2_with_rosbags_cdr(tmp_path, storage):
    bag = tmp_path / "bag"
    n = _teleop_bag(bag, storage)
    ts = get_typestore(Stores.ROS2_HUMBLE)
    with Reader(bag) as reader:
        assert reader.message_count == n
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert topics["/joint_states"] == "sensor_msgs/msg/JointState"
        conn = next(c for c in reader.connections if c.topic == "/camera/color/image_raw")
        _, _, raw = next(reader.messages(connections=[conn]))
        img = ts.deserialize_cdr(raw, conn.msgtype)
        assert img.encoding == "bgr8" and img.data.shape == (8 * 8 * 3,)
    assert not any(p.name.startswith(".bag") for p in tmp_path.iterdir())  # temp dir renamed away
    with pytest.raises(FileExistsError, match="bag already exists"):
        BagRecorder(bag)


def test_teleop_bag_imports_as_episodes(tmp_path):
    bag, store_path = tmp_path / "bag", tmp_path / "store.zarr"
    _teleop_bag(bag, "mcap")
    decoded = read_bag(bag)
    assert len(decoded["joint_states"]) == 90
    kin = Kinematics(LIMITS.urdf, LIMITS.joint_names, LIMITS.ee_link)
    try:
        ids = import_rosbag(bag, store_path, kin, camera="wrist", rate_hz=10.0, task="teleop")
    finally:
        kin.close()
    store = EpisodeStore.open(store_path)
    assert ids == [0, 1] and [store.episode_meta(i)["instruction"] for i in ids] == ["pick", "place"]
    assert [store.episode_meta(i)["success"] for i in ids] == [None, None]  # the bag does not say: unknown
    first, second = store.episode(0), store.episode(1)
    assert first["action"].shape[0] + second["action"].shape[0] == 30  # 3 s resampled at 10 Hz
    assert first["images/wrist"].shape[1:] == (8, 8, 3)
    assert np.all(np.diff(first["images/wrist"][:, 0, 0, 0].astype(int)) > 0)  # frames advance in time
    a = np.concatenate([first["action"], second["action"]])
    assert np.all(np.isfinite(a)) and np.any(np.abs(a[:-1, :3]).sum(1) > 1e-4)  # EE moves with joint 1
    assert set(np.unique(a[:, 6])) == {0.0, 1.0}  # gripper from finger width: open, then closed
    width = unpack_state(np.concatenate([first["state"], second["state"]])).gripper_width  # [30]
    assert set(np.round(width, 6)) == {0.04, 0.01}  # the measured width, as recorded
    with pytest.raises(FileNotFoundError, match="no metadata.yaml"):
        read_bag(tmp_path / "nope")


def test_joint_states_without_gripper_width_are_an_error(tmp_path):
    """The rule of vla.core.state: no width is invented (the importer once wrote 0.0 here)."""
    bag = tmp_path / "bag"
    _teleop_bag(bag, "mcap", fingers_from=12)  # the first 12 joint states (0.4 s) lack the finger joints
    kin = Kinematics(LIMITS.urdf, LIMITS.joint_names, LIMITS.ee_link)
    try:
        with pytest.raises(ValueError, match=r"bag: joint_states message at t=1\d+ ns has no gripper width"):
            import_rosbag(bag, tmp_path / "store.zarr", kin, camera="wrist")
    finally:
        kin.close()
    assert not (tmp_path / "store.zarr").exists()  # nothing half-imported


def test_killed_recording_loses_at_most_the_last_second(tmp_path, domain):
    """`vla ros2 run ... record=DIR` SIGKILLed mid-recording: the directory is a bag of all but the last
    segment (0.5 s), and `vla import rosbag` imports it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from robot_io.dds import DdsTransport, loopback_config
    from robot_io.transport import LATCHED, RELIABLE, SENSOR_DATA, spin_until
    from vla import cli

    bag, store = tmp_path / "bag", tmp_path / "store.zarr"
    env = {**os.environ, "CYCLONEDDS_URI": os.environ.get("CYCLONEDDS_URI", loopback_config())}
    args = [f"domain_id={domain}", "rate_hz=20", "enabled=true", "status_log_s=0", f"record={bag}"]
    with open(tmp_path / "node.log", "w") as log:
        node = subprocess.Popen(
            [sys.executable, "-m", "vla.cli", "ros2", "run", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        with DdsTransport(domain_id=domain) as tr:
            joints = tr.create_publisher("joint_states", msgs.JointState, SENSOR_DATA)
            image = tr.create_publisher("camera/color/image_raw", msgs.Image, SENSOR_DATA)
            instruction = tr.create_publisher("vla/instruction", msgs.String, LATCHED)  # kept: latched
            instruction.publish(msgs.String(data="pick"))
            commands = []
            tr.create_subscription("vla/ee_delta", msgs.TwistStamped, commands.append, RELIABLE)

            def tick(k=[0]):  # noqa: B006  (a counter across calls)
                k[0] += 1
                q = HOME_Q + np.r_[0.002 * k[0], np.zeros(6)]  # teleop-like motion, well within the checks
                joints.publish(convert.joint_state_msg(NAMES, np.r_[q, 0.02, 0.02], stamp=convert.now_time()))
                image.publish(convert.image_to_msg(np.full((8, 8, 3), k[0] % 256, np.uint8), "rgb8"))

            assert spin_until(tr, lambda: tick() or len(commands) >= 5, 20.0), (
                tmp_path / "node.log"
            ).read_text()
            end = time.monotonic() + 2.0  # record for 2 s more, then kill without warning
            while time.monotonic() < end:
                tick()
                tr.spin_once(0.03)
            killed_ns = time.time_ns()
            node.send_signal(signal.SIGKILL)
            assert node.wait(timeout=10) == -signal.SIGKILL
    finally:
        node.kill()
    decoded = read_bag(bag)  # a valid bag: metadata.yaml lists only finalised segments
    last_ns = max(t for series in decoded.values() for t, _ in series)
    assert killed_ns - last_ns <= 1_000_000_000, (killed_ns - last_ns) / 1e9  # at most the last second lost
    assert len(decoded["vla/ee_delta"]) >= 20 and len(decoded["joint_states"]) >= 40
    assert cli.main(["import", "rosbag", str(bag), f"out={store}", "camera=static"]) == 0
    ep = EpisodeStore.open(store).episode(0)
    assert ep["action"].shape[0] >= 20 and ep["images/static"].shape[1:] == (8, 8, 3)


def test_recording_is_a_valid_bag_while_it_grows(tmp_path):
    """Short files every segment_s, merged every merge_s: at every moment the directory reads as a bag of
    what was finalised, with no message twice, and a closed recording has one file per merge_s."""
    import time

    bag = tmp_path / "bag"
    rec = BagRecorder(bag, segment_s=0.05, merge_s=0.3)
    start, seen = time.monotonic(), []
    for k in range(60):
        rec.write("vla/status_count", msgs.Float64(data=float(k)))
        time.sleep(0.01)
        if k % 10 == 9:
            with rec._lock:  # a moment between two finalisations (the flusher thread finalises too)
                snapshot = [m.data for _, m in read_bag(bag).get("vla/status_count", [])]
            assert snapshot == sorted(set(snapshot)) and snapshot == [float(i) for i in range(len(snapshot))]
            seen.append(len(snapshot))
    assert seen[-1] >= 40 and seen == sorted(seen)  # the finalised part grows, in order, without gaps
    rec.close()
    merges = (time.monotonic() - start) / 0.3  # one long file per merge_s, plus the last part
    assert [m.data for _, m in read_bag(bag)["vla/status_count"]] == [float(k) for k in range(60)]
    files = sorted(p.name for p in bag.iterdir())
    assert "metadata.yaml" in files and all(f.endswith(".mcap") for f in files if f != "metadata.yaml")
    assert 2 <= len(files) - 1 <= merges + 1 and not any("recent" in f for f in files), (files, merges)

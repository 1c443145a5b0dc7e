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

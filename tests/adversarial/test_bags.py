"""Probe: a bit flipped inside a recorded bag (issue 21: "a bit-flipped MCAP imports 286 wrong pixel values
silently"). The recorder now seals every storage file (MCAP chunk CRCs, a crc32 per file in metadata.yaml);
`vla import rosbag` refuses a damaged bag with one line naming the file and, inside an MCAP chunk, its byte
offset, and writes no store. Bags are real recordings (BagRecorder), imported by the real command."""

from __future__ import annotations

import re

import numpy as np
import pytest

from robot_io import convert, msgs
from robot_io.bag import BagRecorder
from robot_io.safety import load_limits
from vla.data.store import EpisodeStore

NAMES = list(load_limits("panda").joint_names) + list(convert.FINGER_JOINTS)
HOME_Q = np.array([0.0, -0.25, 0.0, -2.3, 0.0, 2.05, 0.785])


def _record(path, storage="mcap") -> None:
    """One second of a teleoperated arm at 30 Hz, 16x16 noise images (every pixel value matters)."""
    rng = np.random.default_rng(0)
    with BagRecorder(path, storage=storage) as rec:
        rec.write("vla/instruction", msgs.String(data="pick"), 1_000_000_000)
        for k in range(30):
            t = 1_000_000_000 + k * 33_333_333
            stamp = convert.time_from_seconds(t * 1e-9)
            q = HOME_Q + np.array([0.1 * k / 30, 0, 0, 0, 0, 0, 0])
            rec.write("joint_states", convert.joint_state_msg(NAMES, np.r_[q, 0.02, 0.02], stamp=stamp), t)
            img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            rec.write("camera/color/image_raw", convert.image_to_msg(img, "rgb8", stamp), t + 1000)


def _flip(file, offset: int) -> None:
    data = bytearray(file.read_bytes())
    data[offset] ^= 0x04
    file.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["image bytes in an MCAP chunk", "MCAP summary", "sqlite3 file"])
def test_a_bit_flipped_bag_is_refused_in_one_line(tmp_path, vla, where):
    bag, store = tmp_path / "bag", tmp_path / "store.zarr"
    _record(bag, "sqlite3" if where == "sqlite3 file" else "mcap")
    assert vla("import", "rosbag", bag, f"out={tmp_path / 'intact.zarr'}")[0] == 0  # the bag as recorded
    (file,) = [p for p in bag.iterdir() if p.name != "metadata.yaml"]
    if where == "image bytes in an MCAP chunk":
        rng = np.random.default_rng(0)
        last = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(30)][-1]
        at = file.read_bytes().index(last.tobytes())  # the last image's pixels, as recorded
        _flip(file, at + 100)
        expected = rf"{file.name} is corrupted: the MCAP chunk at byte (\d+) does not match its crc32"
    elif where == "MCAP summary":
        _flip(file, file.stat().st_size - 40)  # in the summary section, outside every chunk
        expected = rf"{file.name} is corrupted: the file does not match the crc32 recorded when it was closed"
    else:
        _flip(file, file.stat().st_size // 2)
        expected = rf"{file.name} is corrupted: the file does not match the crc32 recorded"
    code, err = vla("import", "rosbag", bag, f"out={store}")
    assert code != 0 and len(err) == 1 and re.search(expected, err[0]), err
    assert err[0].startswith("vla import rosbag: ") and str(bag) in err[0]
    if where == "image bytes in an MCAP chunk":  # the offset names the chunk holding the flipped byte
        assert 8 <= int(re.search(expected, err[0]).group(1)) < at + 100
    assert not store.exists()


def test_an_intact_bag_imports_every_pixel(tmp_path, vla):
    """The control: sealing the files changes no message (the importer reads back what was recorded)."""
    bag, store = tmp_path / "bag", tmp_path / "store.zarr"
    _record(bag)
    assert vla("import", "rosbag", bag, f"out={store}")[0] == 0
    images = EpisodeStore.open(store).episode(0)["images/static"]
    rng = np.random.default_rng(0)
    recorded = np.stack([rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(30)])
    # resampled at 10 Hz from the 30 Hz stream: every frame is one of the recorded images, exactly
    assert all(any(np.array_equal(f, r) for r in recorded) for f in images)

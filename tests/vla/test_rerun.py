"""Running a README command a second time never silently overwrites or duplicates (issue 20): each command
that writes an output runs twice on tiny real inputs (a store from the real collector, 32-px camera, 2
pick episodes; a rosbag2 recording written by the project's recorder), and the second identical run is
one line on stderr with exit code 2 that leaves the first run's output as it was; `overwrite=true` then
replaces it. `vla collect` continues with new seeds instead (tests/vla/commands/test_collect.py), `vla
train` and `vla eval` refuse (tests/vla/commands/test_train.py, test_eval.py).

    python -m pytest tests/vla/test_rerun.py          # ~40 s on 2 cores
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from action_tokenizers.base import load_tokenizer
from robot_io import convert, msgs
from robot_io.bag import BagRecorder
from robot_io.safety import load_limits
from vla.cli import main as cli
from vla.data.store import EpisodeStore


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("rerun") / "pick.zarr"
    assert cli(["collect", "task=pick", "episodes=2", "env.image_size=32", f"out={path}"]) == 0
    return path


def refused(argv: list[str], capsys, *words: str) -> str:
    """Run `vla ARGV`, expect exit code 2 and one line on stderr holding `words` and `overwrite=true`
    where given; return that line."""
    capsys.readouterr()
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert all(w in err[0] for w in words), err[0]
    return err[0]


def snapshot(path: Path) -> dict[str, tuple[int, int]]:
    """Every file under `path` -> (size, mtime_ns): the first run's output, to see it left alone."""
    return {
        str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in path.rglob("*")
        if p.is_file()
    }


def test_dataset_view_twice(store, tmp_path, capsys):
    out = tmp_path / "view"
    argv = ["dataset", "view", str(store), "episodes=[0,1]", f"out={out}", "size=32", "thumb=32", "frames=2"]
    assert cli(argv) == 0
    before = snapshot(out)
    refused(argv, capsys, str(out), "overwrite=true")
    assert snapshot(out) == before
    assert cli([*argv, "overwrite=true", "video=false"]) == 0
    assert (out / "contact_sheet.png").is_file() and not list(out.glob("*.mp4"))  # replaced, not mixed


def test_export_and_import_lerobot_twice(store, tmp_path, capsys):
    v3, imported = tmp_path / "pick_v3", tmp_path / "pick_v3.zarr"
    export = ["export", "lerobot", str(store), f"out={v3}"]
    assert cli(export) == 0
    before = snapshot(v3)
    refused(export, capsys, str(v3), "overwrite=true")
    assert snapshot(v3) == before
    assert cli([*export, "episodes=[1]", "overwrite=true"]) == 0
    assert json.loads((v3 / "meta" / "info.json").read_text())["total_episodes"] == 1

    imp = ["import", "lerobot", str(v3), f"out={imported}"]
    assert cli(imp) == 0
    refused(imp, capsys, str(imported), "overwrite=true")
    assert EpisodeStore.open(imported).num_episodes == 1  # not appended twice
    assert cli([*imp, "overwrite=true"]) == 0
    assert EpisodeStore.open(imported).num_episodes == 1


def test_tokenizer_fit_twice(store, tmp_path, capsys):
    out = tmp_path / "tok"
    argv = ["tokenizer", "fit", str(store), "tokenizer=uniform", f"out={out}", "holdout=0"]
    assert cli(argv) == 0
    before = snapshot(out)
    refused(argv, capsys, str(out), "action_tokenizer.json", "overwrite=true")
    assert snapshot(out) == before
    assert cli([*argv, "tokenizer.n_bins=64", "overwrite=true"]) == 0
    assert load_tokenizer(out / "action_tokenizer.json").vocab_size == 64


LIMITS = load_limits("panda")
HOME_Q = np.array([0.0, -0.25, 0.0, -2.3, 0.0, 2.05, 0.785])


def teleop_bag(path: Path, t0: int) -> Path:
    """1 s of a teleoperated arm at 30 Hz (joint states, an 8-px camera, one instruction), from `t0` ns."""
    names = list(LIMITS.joint_names) + list(convert.FINGER_JOINTS)
    with BagRecorder(path) as rec:
        for k in range(30):
            t = t0 + k * 33_333_333
            stamp = convert.time_from_seconds(t * 1e-9)
            q = np.r_[HOME_Q + np.array([0.01 * k, 0, 0, 0, 0, 0, 0]), 0.02, 0.02]
            rec.write("joint_states", convert.joint_state_msg(names, q, stamp=stamp), t)
            image = convert.image_to_msg(np.full((8, 8, 3), k, np.uint8), "rgb8", stamp)
            rec.write("camera/color/image_raw", image, t + 1000)
            if k == 0:
                rec.write("vla/instruction", msgs.String(data="pick"), t)
    return path


def test_import_rosbag_twice_refuses_the_same_recording(tmp_path, capsys):
    bag, other, out = (
        teleop_bag(tmp_path / "bag1", 10**9),
        teleop_bag(tmp_path / "bag2", 5 * 10**9),
        tmp_path / "t.zarr",
    )
    argv = ["import", "rosbag", str(bag), f"out={out}"]
    assert cli(argv) == 0
    n = EpisodeStore.open(out).num_episodes
    refused(argv, capsys, str(out), "episodes of this recording", "overwrite=true")
    copy = tmp_path / "copy_of_bag1"  # the same recording under another name is the same recording
    copy.mkdir()
    for f in bag.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    refused(["import", "rosbag", str(copy), f"out={out}"], capsys, "episodes of this recording")
    assert EpisodeStore.open(out).num_episodes == n  # nothing appended twice
    assert cli(["import", "rosbag", str(other), f"out={out}"]) == 0  # another recording appends
    assert cli([*argv, "overwrite=true"]) == 0  # replaces bag1's episodes, keeps bag2's
    s = EpisodeStore.open(out)
    starts = sorted(s.episode_meta(i)["start_ns"] for i in range(s.num_episodes))
    assert s.num_episodes == 2 * n and len(set(starts)) == len(starts)
    assert sorted(b["path"] for b in s.meta["bags"]) == [str(bag.resolve()), str(other.resolve())]


def test_ros2_run_never_records_over_a_bag(tmp_path, capsys):
    bag = tmp_path / "bag1"
    domain = 229  # a DDS domain of its own (tests/robot_io/conftest.py hands out 10..217)
    argv = ["ros2", "run", "policy=constant", f"domain_id={domain}", f"record={bag}", "duration_s=0.5"]
    argv += ["status_log_s=0"]
    assert cli(argv) == 0
    before = snapshot(bag)
    assert before
    refused(argv, capsys, f"record={bag} already exists")
    refused([*argv[:-1], "overwrite=true"], capsys, "unknown key 'overwrite'")  # a recording is kept
    assert snapshot(bag) == before


def test_vqa_generate_twice(tmp_path, capsys):
    out = tmp_path / "scene_vqa"
    argv = ["vqa", "generate", str(out), "scenes=1", "tasks=[push]", "image_size=32", "progress=false"]
    assert cli(argv) == 0
    before = snapshot(out)
    refused(argv, capsys, str(out), "overwrite=true")
    assert snapshot(out) == before
    assert cli([*argv, "scenes=2", "overwrite=true"]) == 0
    assert len(list((out / "images").glob("*.png"))) == 2


def test_goals_generate_and_train_twice(tmp_path, capsys):
    data, ckpt = tmp_path / "goals.npz", tmp_path / "goal_diffusion"
    small = ["pointcloud.num_points=32", "model.width=32", "model.depth=1", "model.points.num_groups=8"]
    small += ["model.points.width=16"]
    gen = [
        "goals",
        "generate",
        *small,
        "generate.tasks=[pick]",
        "generate.episodes=1",
        "generate.image_size=48",
    ]
    gen += [f"generate.out={data}"]
    assert cli(gen) == 0
    before = data.stat().st_mtime_ns
    refused(gen, capsys, f"generate.out={data}", "overwrite=true")
    assert data.stat().st_mtime_ns == before
    train = ["goals", "train", *small, f"train.data={data}", "train.steps=1", "train.batch_size=1"]
    train += [f"train.out={ckpt}"]
    assert cli(train) == 0
    before = snapshot(ckpt)
    refused(train, capsys, f"train.out={ckpt}", "overwrite=true")
    assert snapshot(ckpt) == before
    assert cli([*train, "overwrite=true"]) == 0
    assert snapshot(ckpt) != before

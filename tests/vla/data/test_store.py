"""Episode store: round trip of every dtype, metadata, select, delete, stats, errors, atomic append."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import zarr

from vla.data.store import EpisodeStore
from vla.data.synthetic import episode, features


def test_roundtrip_every_dtype_and_metadata(tmp_path):
    feats = features(extra=True)
    s = EpisodeStore.create(tmp_path / "s.zarr", feats, fps=10, meta={"action_space": "ee_delta"})
    eps = [episode(feats, t, seed=i) for i, t in enumerate([5, 1, 12])]
    metas = [
        {"instruction": "pick up the red cube", "task": "pick", "success": True, "split": "train"},
        {"instruction": "push it", "task": "push", "success": False, "split": "train"},
        {"instruction": "pick up the blue cube", "task": "pick", "success": True, "split": "val"},
    ]
    for ep, m in zip(eps, metas):
        s.append_episode(ep, m)
    for store in (s, EpisodeStore.open(tmp_path / "s.zarr")):
        assert store.num_episodes == 3 and store.num_frames == 18
        assert store.episode_ends.tolist() == [5, 6, 18]
        assert store.fps == 10 and store.meta == {"action_space": "ee_delta"}
        assert store.features == feats
        for i, ep in enumerate(eps):
            got = store.episode(i)
            for k, v in ep.items():
                assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
                np.testing.assert_array_equal(got[k], v, err_msg=k)
            assert store.episode_meta(i) == {**metas[i], "length": len(ep["action"]), "index": i}
        assert store.select(task="pick") == [0, 2]
        assert store.select(task="pick", split="val") == [2]
        assert store.select(success=False) == [1]
        assert store.select() == [0, 1, 2]
    # the replay-buffer index array matches
    assert zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["meta/episode_ends"][:].tolist() == [5, 6, 18]


def test_frame_reader_matches_zarr(tmp_path):
    feats = features(extra=True)
    s = EpisodeStore.create(tmp_path / "s.zarr", feats, fps=10)
    ep = episode(feats, 9, seed=3)
    s.append_episode(ep, {})
    for key in ("images/front", "depth/front", "seg/front", "state", "reward"):
        r = s.frame_reader(key)
        assert r.fast == (key.startswith(("images", "depth", "seg")))
        np.testing.assert_array_equal(r.read_many([8, 0, 4]), ep[key][[8, 0, 4]])
    r = s.frame_reader("images/front")
    os.remove(r._frame_path(4))
    with pytest.raises(ValueError, match="chunk file for frame 4 is missing"):
        r.read(4)
    with open(r._frame_path(5), "r+b") as f:  # truncate a frame: a clear error, never garbage pixels
        f.truncate(20)
    with pytest.raises(ValueError, match="/c/5/0/0/0 is corrupt"):
        r.read_many([5])
    np.testing.assert_array_equal(r.read_many([6, 6, 7]), ep["images/front"][[6, 6, 7]])


def test_bad_input_is_rejected_and_store_unchanged(tmp_path):
    feats = features()
    s = EpisodeStore.create(tmp_path / "s.zarr", feats, fps=10)
    good = episode(feats, 4, seed=1)
    s.append_episode(good, {"task": "pick"})
    bad = dict(good)
    del bad["state"]
    with pytest.raises(ValueError, match=r"missing \['state'\]"):
        s.append_episode(bad)
    with pytest.raises(ValueError, match=r"different lengths"):
        s.append_episode({**good, "action": good["action"][:3]})
    with pytest.raises(ValueError, match=r"'images/front': expected shape \[T, 16, 16, 3\]"):
        s.append_episode({**good, "images/front": good["images/front"][:, :8]})
    nan_action = good["action"].copy()
    nan_action[2, 5] = np.inf
    with pytest.raises(ValueError, match=r"'action': non-finite value at frame 2"):
        s.append_episode({**good, "action": nan_action})
    with pytest.raises(ValueError, match="'state': expected dtype float32"):
        s.append_episode({**good, "state": good["state"].astype(np.complex64)})
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        s.append_episode(good, {"x": object()})
    assert s.num_episodes == 1 and s.num_frames == 4
    np.testing.assert_array_equal(EpisodeStore.open(s.path).episode(0)["action"], good["action"])
    with pytest.raises(ValueError, match="read-only"):
        EpisodeStore.open(s.path).append_episode(good)
    with pytest.raises(FileExistsError):
        EpisodeStore.create(s.path, feats, fps=10)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        EpisodeStore.open(tmp_path / "nowhere")
    with pytest.raises(IndexError, match="episode 3 out of range"):
        s.episode(3)


def test_corrupt_store_errors_name_the_problem(tmp_path):
    feats = features()
    s = EpisodeStore.create(tmp_path / "s.zarr", feats, fps=10)
    s.append_episode(episode(feats, 4, seed=1))
    import shutil

    shutil.rmtree(tmp_path / "s.zarr" / "data" / "action")
    with pytest.raises(ValueError, match="data/action is missing"):
        EpisodeStore.open(s.path)
    (tmp_path / "t.zarr").mkdir()
    (tmp_path / "t.zarr" / "zarr.json").write_text("{ truncated")
    with pytest.raises(ValueError, match="t.zarr"):
        EpisodeStore.open(tmp_path / "t.zarr")


def test_delete_episodes_and_stats_cache(tmp_path):
    feats = features()
    s = EpisodeStore.create(tmp_path / "s.zarr", feats, fps=10)
    eps = [episode(feats, 3 + i, seed=i) for i in range(4)]
    for i, ep in enumerate(eps):
        s.append_episode(ep, {"i": i})
    st = s.stats("action")
    allact = np.concatenate([e["action"] for e in eps]).astype(np.float64)
    np.testing.assert_allclose(st["mean"], allact.mean(0), rtol=1e-6)
    np.testing.assert_allclose(st["q99"], np.quantile(allact, 0.99, axis=0), rtol=1e-6)
    assert EpisodeStore.open(s.path)._attrs["stats"]["action"]["num_frames"] == s.num_frames  # cached on disk
    s.delete_episodes([1, 2])
    assert s.num_episodes == 2 and [s.episode_meta(i)["i"] for i in range(2)] == [0, 3]
    np.testing.assert_array_equal(s.episode(1)["images/front"], eps[3]["images/front"])
    ro = EpisodeStore.open(s.path)
    assert ro.episode_ends.tolist() == [3, 9]
    kept = np.concatenate([eps[0]["action"], eps[3]["action"]]).astype(np.float64)
    np.testing.assert_allclose(ro.stats("action")["max"], kept.max(0))  # stale cache not reused
    norm = ro.normalizer({"action": "q99", "state": "meanstd"})
    assert np.all(np.abs(norm.normalize("action", kept)) <= 1)
    assert not any(p.name.startswith(".s.zarr") for p in tmp_path.iterdir())


WRITER = textwrap.dedent(
    """
    from vla.data.store import EpisodeStore
    from vla.data.synthetic import episode, features
    s = EpisodeStore.open({path!r}, mode="a")
    print("writing", flush=True)
    s.append_episode(episode(features(64, 64), 1000, seed=9), {{"task": "doomed"}})
    print("done", flush=True)
    """
)


def test_killed_writer_leaves_store_as_it_was(tmp_path):
    feats = features(64, 64)
    path = tmp_path / "s.zarr"
    s = EpisodeStore.create(path, feats, fps=10)
    first = episode(feats, 30, seed=1)
    s.append_episode(first, {"task": "kept"})
    st_before = s.stats("action")
    with pytest.raises(ValueError, match="another writer has this store open"):
        EpisodeStore.open(path, mode="a")  # one writer at a time
    s.close()
    code = WRITER.format(path=str(path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    # wait until the writer has put new image frames on disk, then kill it mid-episode
    probe = path / "data" / "images" / "front" / "c" / "60"
    deadline = time.time() + 60
    while not probe.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "writer finished before it could be killed"
    ro = EpisodeStore.open(path)
    assert ro.num_episodes == 1 and ro.num_frames == 30
    for k, v in ro.episode(0).items():
        np.testing.assert_array_equal(v, first[k])
    # reopening for append trims the orphan frames; the next append is whole and correct
    s = EpisodeStore.open(path, mode="a")
    assert zarr.open_group(str(path), mode="r")["data/images/front"].shape[0] == 30
    second = episode(feats, 7, seed=2)
    s.append_episode(second, {"task": "next"})
    ro = EpisodeStore.open(path)
    assert ro.select(task="doomed") == [] and ro.episode_ends.tolist() == [30, 37]
    np.testing.assert_array_equal(ro.episode(1)["images/front"], second["images/front"])
    np.testing.assert_array_equal(ro.episode(0)["action"], first["action"])
    assert not ro.stats("action")["count"] == st_before["count"]
    assert not list(path.rglob("*.partial"))


def test_image_compression_choice(tmp_path):
    feats = features(24, 32)
    ep = episode(feats, 6, seed=4)
    for codec in ("lz4", "zstd"):
        s = EpisodeStore.create(tmp_path / f"{codec}.zarr", feats, fps=10, image_compression=codec)
        s.append_episode(ep)
        meta = zarr.open_array(
            str(tmp_path / f"{codec}.zarr" / "data" / "images" / "front"), mode="r"
        ).metadata
        assert codec in str(meta.codecs)
        r = s.frame_reader("images/front")
        assert r.fast
        np.testing.assert_array_equal(r.read_many([5, 0, 0]), ep["images/front"][[5, 0, 0]])
        s.delete_episodes([])  # a no-op keeps the store as is
        s.append_episode(ep)
        s.delete_episodes([0])  # the rewrite keeps the chosen codec
        meta = zarr.open_array(
            str(tmp_path / f"{codec}.zarr" / "data" / "images" / "front"), mode="r"
        ).metadata
        assert codec in str(meta.codecs) and s.num_episodes == 1
    with pytest.raises(ValueError, match="image_compression must be one of"):
        EpisodeStore.create(tmp_path / "x.zarr", feats, fps=10, image_compression="png")

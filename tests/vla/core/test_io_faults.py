"""Writes under faults (issue 21, item 6): what the atomic writers and the episode store leave behind gets
the user's umask (not mkstemp's 0600), and a read-only or full destination is one StorageError line with
nothing half-written left. The read-only case uses a chmod'ed directory, or as root (where chmod does not
restrict) a read-only tmpfs; the full disk is a 2 MB tmpfs (root only). Either is skipped where it
cannot be made."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from vla.core.io import StorageError, atomic_directory, atomic_write_bytes, atomic_write_json
from vla.data.store import EpisodeStore, lock_path, verify_store
from vla.data.synthetic import episode, features
from vla.data.video import write_video
from vla.models.checkpoint import CheckpointContents, CheckpointManager


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_written_files_get_the_users_umask(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        f = atomic_write_bytes(tmp_path / "report.json", b"{}")
        with atomic_directory(tmp_path / "ckpt") as d:
            (d / "x").write_bytes(b"1")
        video = write_video(tmp_path / "ep.mp4", [np.zeros((16, 16, 3), np.uint8)] * 3, fps=10)
        store = EpisodeStore.create(tmp_path / "s.zarr", features(), fps=10)
        store.append_episode(episode(features(), 2, seed=0))
        store.close()
    finally:
        os.umask(old)
    assert _mode(f) == file_mode and _mode(video) == file_mode
    assert _mode(tmp_path / "ckpt") == dir_mode and _mode(tmp_path / "s.zarr") == dir_mode
    assert _mode(tmp_path / "s.zarr" / "zarr.json") == file_mode


@pytest.fixture
def full_dir(small_fs):
    return small_fs("2m")


def _one_line(e: BaseException) -> str:
    text = str(e)
    assert "\n" not in text and isinstance(e, ValueError) and isinstance(e, OSError)
    return text


def test_a_read_only_destination_is_one_line_and_leaves_nothing(readonly_dir):
    with pytest.raises(StorageError) as e:
        atomic_write_json(readonly_dir / "report.json", {"a": 1})
    assert _one_line(e.value).startswith(f"cannot write {readonly_dir / 'report.json'}: ")
    with pytest.raises(StorageError) as e:
        EpisodeStore.create(readonly_dir / "s.zarr", features(), fps=10)
    assert "s.zarr" in _one_line(e.value)
    with pytest.raises(StorageError):
        CheckpointManager(readonly_dir / "checkpoints").save(1, CheckpointContents({"w": torch.ones(2)}), {})
    assert list(readonly_dir.iterdir()) == []


def test_a_full_disk_is_one_line_and_keeps_what_was_committed(full_dir):
    feats = features(64, 64)
    store = EpisodeStore.create(full_dir / "s.zarr", feats, fps=10)
    rng = np.random.default_rng(0)
    kept = []
    with pytest.raises(StorageError) as e:
        for i in range(100):  # ~250 kB of noise per episode: the 2 MB disk fills within a few
            ep = episode(feats, 20, seed=i)
            ep["images/front"] = rng.integers(0, 256, ep["images/front"].shape, dtype=np.uint8)
            store.append_episode(ep)
            kept.append(ep)
    msg = _one_line(e.value)
    assert msg.startswith(
        f"cannot append to {full_dir / 's.zarr'}: no space left on device"
    ) or msg.startswith(f"cannot write to {full_dir / 's.zarr'}: no space left on device"), msg
    assert 1 <= len(kept) < 100
    store.close()
    ro = EpisodeStore.open(full_dir / "s.zarr")  # the committed episodes, whole
    assert ro.num_episodes == len(kept)
    for i, ep in enumerate(kept):
        np.testing.assert_array_equal(ro.episode(i)["images/front"], ep["images/front"])
    assert verify_store(full_dir / "s.zarr").ok
    with pytest.raises(StorageError, match="no space left on device"):
        atomic_write_bytes(full_dir / "big.bin", bytes(4_000_000))
    leftovers = [p.name for p in full_dir.iterdir() if p.name not in ("s.zarr",)]
    assert leftovers == [] and not lock_path(full_dir / "s.zarr").exists()

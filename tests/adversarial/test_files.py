"""Probes: a video written where it cannot go (issue 21: "a full disk or a read-only destination is a
traceback"; `write_video` into a read-only directory was a raw PermissionError/OSError). Every episode video
(evaluation, `vla dataset view`, `vla demo`) goes through `write_video`: now one `StorageError` line naming
the video, like every other atomic writer (vla.core.io), with nothing half-written left behind and no file
handle held open. Real read-only and full tmpfs mounts (root), else chmod."""

from __future__ import annotations

import numpy as np
import pytest

from vla.core.io import StorageError
from vla.data.video import write_video


@pytest.mark.parametrize("name", ["ep.mp4", "ep.gif", "videos/ep.mp4"])
def test_a_video_into_a_read_only_directory_is_one_line(readonly_dir, name):
    frames = [np.full((16, 16, 3), k, np.uint8) for k in range(5)]
    with pytest.raises(StorageError) as e:
        write_video(readonly_dir / name, frames, fps=10)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"cannot write {readonly_dir / name}: "), msg
    assert isinstance(e.value, ValueError)  # the CLI prints a ValueError as one line, exit code 1
    assert list(readonly_dir.iterdir()) == []


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_a_video_onto_a_full_disk_is_one_line_and_leaves_nothing(full_dir, suffix):
    rng = np.random.default_rng(0)
    # noise compresses badly: megabytes, far over the 256 kB disk
    frames = [rng.integers(0, 256, (160, 160, 3), dtype=np.uint8) for _ in range(40)]
    with pytest.raises(StorageError, match=rf"^cannot write {full_dir / ('ep' + suffix)}: no space left"):
        write_video(full_dir / f"ep{suffix}", frames, fps=10)
    assert list(full_dir.iterdir()) == []  # the temporary file is gone (and closed: the tmpfs unmounts)


def test_a_directory_in_place_of_a_file_or_a_file_in_a_path_is_one_line(tmp_path):
    """`vla ros2 sim-robot result=DIR` was a raw IsADirectoryError, `vla eval out=FILE` (and demo, tokenizer
    fit) a cryptic `[Errno 17] File exists`, a 300-character store name a raw OSError: each is now one
    StorageError line naming the path and what is in the way."""
    from vla.core.io import atomic_write_json
    from vla.data import synthetic
    from vla.data.store import EpisodeStore

    a_dir, a_file = tmp_path / "adir", tmp_path / "afile.txt"
    a_dir.mkdir()
    a_file.write_text("x")
    with pytest.raises(StorageError, match=rf"^cannot write {a_dir}: it is a directory$"):
        atomic_write_json(a_dir, {"success": 1})
    with pytest.raises(
        StorageError, match=rf"^cannot write {a_file}/run/r\.json: {a_file} is a file, not a dir"
    ):
        atomic_write_json(a_file / "run" / "r.json", {"success": 1})
    long = tmp_path / ("x" * 300)
    with pytest.raises(StorageError, match=r"^cannot create .*: file name too long$"):
        EpisodeStore.create(long, synthetic.features(16, 16), fps=10)
    with pytest.raises(StorageError, match=r"^cannot open .*: file name too long$"):
        EpisodeStore.open(long)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile.txt"]

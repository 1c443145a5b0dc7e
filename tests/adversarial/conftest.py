"""Fixtures of the adversarial suite: `vla(...)` runs one real command in this process and returns its exit
code and stderr lines; `tiny_store` writes a small real episode store `vla train` accepts; `readonly_dir`
is a directory no one can write (a read-only tmpfs as root, where chmod does not restrict, else chmod 555)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vla.cli import main as cli
from vla.data import synthetic
from vla.data.store import EpisodeStore


@pytest.fixture
def vla(capsys):
    """vla(*argv) -> (exit code, stderr lines without progress bars); stdout is discarded."""

    def run(*argv: str) -> tuple[int, list[str]]:
        capsys.readouterr()
        code = cli([str(a) for a in argv])
        err = capsys.readouterr().err
        lines = [x for x in err.splitlines() if x.strip() and "\r" not in x and "it/s]" not in x]
        return code, lines

    return run


def tiny_store(path: Path, seeds: range = range(3)) -> Path:
    """A real store of len(seeds) 12-frame episodes (camera "front", 16 px), one per seed."""
    feats = synthetic.features(16, 16)
    store = EpisodeStore.create(path, feats, fps=10)
    for s in seeds:
        ep = synthetic.episode(feats, 12, s)
        ep["action"] = np.random.default_rng(s).uniform(-1, 1, (12, 7)).astype(np.float32)
        store.append_episode(ep, {"instruction": "lift the red cube", "task": "pick", "seed": s})
    store.close()
    return path


def _mount_tmpfs(d: Path, options: str) -> bool:
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(d)], capture_output=True)
    except OSError:
        return False
    return r.returncode == 0


@pytest.fixture
def readonly_dir(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    if not _mount_tmpfs(d, "ro,size=64k"):
        pytest.skip("running as root, where chmod does not restrict, and no read-only tmpfs can be mounted")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)  # lazy: also when a file is still open


@pytest.fixture
def full_dir(tmp_path):
    d = tmp_path / "small"
    d.mkdir()
    if os.geteuid() != 0 or not _mount_tmpfs(d, "size=256k"):
        pytest.skip("a full file system needs a small tmpfs (root)")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)  # lazy: also when a file is still open

"""Fixtures of the adversarial suite: `vla(...)` runs one real command in this process and returns its exit
code and stderr lines; `tiny_store` writes a small real episode store `vla train` accepts; `full_dir` is a
directory on a 256 kB tmpfs (`small_fs`; `readonly_dir` and `small_fs` live in tests/conftest.py)."""

from __future__ import annotations

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


@pytest.fixture
def full_dir(small_fs):
    return small_fs("256k")

"""Fixtures shared by the vla tests: a tiny store `vla train` accepts (one 16-px camera "front", state,
7-d actions, 3 episodes of 12 frames)."""

import numpy as np
import pytest

from vla.data import synthetic
from vla.data.store import EpisodeStore


@pytest.fixture(scope="session")
def tiny_train_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_train") / "syn.zarr"
    feats = synthetic.features(16, 16)
    st = EpisodeStore.create(path, feats, fps=10)
    for s in range(3):
        ep = synthetic.episode(feats, 12, s)
        ep["action"] = np.random.default_rng(s).uniform(-1, 1, (12, 7)).astype(np.float32)
        st.append_episode(ep, {"instruction": "lift the red cube", "task": "pick"})
    st.close()
    return path

"""A store written before the floors refactor still opens, windows and trains, and today's `vla collect`
writes the same layout from the same seeds, and replaying the old actions today writes the old episodes.

`tests/fixtures/pick_store_db29c6d.zarr` was written by commit db29c6d (the last commit before `vla/core`,
`vla/commands` and the one state layout) with

    vla collect task=pick episodes=2 env.image_size=32 env.cameras=[static] env.depth=false out=...
"""

from __future__ import annotations

import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np

import sim
from sim.config import EnvConfig, TaskConfig
from vla.commands.collect import CollectConfig, collect
from vla.core.rollout import ReplayPolicy, run_episode
from vla.core.state import unpack_state
from vla.core.types import ACTION_KEY, CONTROL_HZ, STATE_KEY
from vla.data.recorder import EpisodeRecorder
from vla.data.store import EpisodeStore
from vla.data.windows import WindowDataset, WindowSpec

OLD = Path(__file__).resolve().parents[2] / "fixtures" / "pick_store_db29c6d.zarr"


def test_old_store_opens_and_windows():
    store = EpisodeStore.open(OLD)
    assert store.num_episodes == 2
    ep = store.episode(0)
    assert ep["images/static"].shape == (16, 32, 32, 3) and ep["images/static"].dtype == np.uint8
    parts = unpack_state(ep[STATE_KEY])  # the old layout is the one layout
    assert parts.joint_positions.shape == (16, 7)
    assert np.all((parts.gripper_width >= 0.0) & (parts.gripper_width <= 0.081))
    sample = WindowDataset(OLD, WindowSpec(n_action=4))[0]
    assert tuple(sample[ACTION_KEY].shape) == (4, 7)
    norm = store.normalizer({ACTION_KEY: "q99"})
    y = norm.normalize(ACTION_KEY, ep[ACTION_KEY])
    assert np.all(np.abs(y) <= 1.0)
    stats = store.stats(ACTION_KEY)  # q99 mode clips to [q01, q99]
    clipped = np.clip(ep[ACTION_KEY], stats["q01"], stats["q99"])
    np.testing.assert_allclose(norm.unnormalize(ACTION_KEY, y), clipped, atol=1e-6)


def test_todays_collect_writes_the_old_layout(tmp_path):
    """Same seeds, same scenes and store layout; the actions differ since the session-7 experts (their
    carry funnel, vertical step floor and gripper timing), so only the first frame is compared here."""
    cfg = CollectConfig(
        env=EnvConfig(image_size=32, cameras=["static"], depth=False),
        task=TaskConfig(name="pick"),
        episodes=2,
        out=str(tmp_path / "new.zarr"),
    )
    collect(cfg)
    old, new = EpisodeStore.open(OLD), EpisodeStore.open(tmp_path / "new.zarr")
    assert new.num_episodes == old.num_episodes
    assert new.features == old.features
    for i in range(old.num_episodes):
        a, b = old.episode(i), new.episode(i)
        assert a.keys() == b.keys()
        for key in ("images/static", STATE_KEY):
            np.testing.assert_array_equal(a[key][0], b[key][0], err_msg=f"episode {i} key {key}")
        skip = ("length",)
        assert {k: v for k, v in old.episode_meta(i).items() if k not in skip} == {
            k: v for k, v in new.episode_meta(i).items() if k not in skip
        }


def test_replaying_the_old_actions_writes_the_old_episodes(tmp_path):
    """Today's env, rollout loop, recorder and store reproduce the old store exactly from its actions."""
    old = EpisodeStore.open(OLD)
    new = EpisodeStore.create(tmp_path / "replay.zarr", old.features, fps=CONTROL_HZ, meta={"source": "sim"})
    env = gym.make(sim.ENV_ID, task="pick", image_size=32, cameras=("static",), depth=False)
    try:
        for i in range(old.num_episodes):
            meta = old.episode_meta(i)
            run_episode(env, ReplayPolicy(old.episode(i)[ACTION_KEY]), meta["seed"], [EpisodeRecorder(new)])
    finally:
        env.close()
        new.close()
    new = EpisodeStore.open(tmp_path / "replay.zarr")
    assert new.num_episodes == old.num_episodes
    for i in range(old.num_episodes):
        a, b = old.episode(i), new.episode(i)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"episode {i} key {key}")
        assert old.episode_meta(i) == new.episode_meta(i)


def test_old_store_can_be_appended_to(tmp_path):
    copy = tmp_path / "old.zarr"
    shutil.copytree(OLD, copy)
    store = EpisodeStore.open(copy, mode="a")
    try:
        ep = store.episode(1)
        store.append_episode(ep, {**store.episode_meta(1), "seed": 99})
    finally:
        store.close()
    assert EpisodeStore.open(copy).num_episodes == 3

"""`vla collect` and the recorder on the real PyBullet simulator and scripted experts."""

import numpy as np
import pytest

from sim.config import EnvConfig, TaskConfig
from vla import cli
from vla.commands.collect import CollectConfig, collect
from vla.data.recorder import EpisodeRecorder, features_from_spaces
from vla.data.store import EpisodeStore
from vla.core.types import ACTION_NAMES


def test_collect_cli_writes_successful_episodes(tmp_path, capsys):
    out = tmp_path / "pick.zarr"
    argv = ["task=pick", "episodes=2", "env.image_size=32", "env.cameras=[static]", f"out={out}"]
    assert cli.main(["collect", *argv]) == 0
    text = capsys.readouterr().out
    assert "collected 2 episodes" in text and "success rate" in text and "kB/frame" in text
    s = EpisodeStore.open(out)
    assert s.num_episodes == 2 and s.fps == 10
    assert set(s.features) == {"images/static", "state", "action"}
    assert s.features["action"].names == ACTION_NAMES
    assert s.meta["collect"]["episodes"] == 2 and s.meta["collect"]["out"] == str(out)
    assert s.meta["action_space"] == "ee_delta" and s.meta["env"]["image_size"] == 32
    assert s.meta["collect"]["task"]["name"] == "pick" and s.meta["env"]["cameras"] == ["static"]
    for i in range(2):
        m = s.episode_meta(i)
        assert m["success"] is True and m["task"] == "pick" and m["split"] == "train"
        assert m["instruction"] and m["length"] == len(s.episode(i)["action"])
        ep = s.episode(i)
        assert ep["images/static"].shape[1:] == (32, 32, 3) and ep["images/static"].std() > 0
        assert np.all(np.isfinite(ep["action"])) and np.all(np.abs(ep["action"][:, 6] - 0.5) <= 0.5)
    assert [s.episode_meta(i)["seed"] for i in range(2)] == [0, 1]
    # a second run appends (features match) and continues from the given seed
    assert cli.main(["collect", *argv, "episodes=1", "seed=5"]) == 0
    s = EpisodeStore.open(out)
    assert s.num_episodes == 3 and s.episode_meta(2)["seed"] == 5
    # a different camera set cannot be appended to this store: one line, exit 2, the store untouched
    capsys.readouterr()
    assert cli.main(["collect", *argv[:-2], "env.cameras=[wrist]", f"out={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differ" in err[0] and "overwrite=true" in err[0], err
    assert EpisodeStore.open(out).num_episodes == 3


def test_collect_again_continues_with_new_seeds(tmp_path, capsys):
    """Re-running `vla collect` into a store never repeats a seed (a repeated seed is the same scene, so a
    validation episode would leak into training): it continues after the largest seed the store holds
    for that task and split, each split in its own range; overwrite=true starts the store afresh."""
    from sim.tasks import HELDOUT_SEED_OFFSET

    out = tmp_path / "pick.zarr"
    argv = ["collect", "task=pick", "episodes=2", "env.image_size=32", "env.cameras=[static]", f"out={out}"]
    assert cli.main(argv) == 0
    assert cli.main(argv) == 0  # the same command again, seed=0 by default
    assert "continuing at seed 2" in capsys.readouterr().out
    s = EpisodeStore.open(out)
    seeds = [s.episode_meta(i)["seed"] for i in range(s.num_episodes)]
    assert seeds == [0, 1, 2, 3]
    assert not np.array_equal(s.episode(0)["images/static"][0], s.episode(2)["images/static"][0])
    # the held-out split has its own seed range: it starts at its first seed, then continues
    assert cli.main([*argv, "episodes=1", "task.split=heldout"]) == 0
    assert cli.main([*argv, "episodes=1", "task.split=heldout"]) == 0
    s = EpisodeStore.open(out)
    assert [s.episode_meta(i)["seed"] for i in (4, 5)] == [HELDOUT_SEED_OFFSET, HELDOUT_SEED_OFFSET + 1]
    train = [m["seed"] for m in (s.episode_meta(i) for i in range(s.num_episodes)) if m["split"] == "train"]
    assert len(train) == len(set(train)) == 4
    # an explicit seed beyond the store's is honoured; one below it is not repeated
    assert cli.main([*argv, "episodes=1", "seed=0"]) == 0
    assert EpisodeStore.open(out).episode_meta(6)["seed"] == 4
    # overwrite=true: a new store, from the first seed again
    assert cli.main([*argv, "episodes=1", "overwrite=true"]) == 0
    s = EpisodeStore.open(out)
    assert s.num_episodes == 1 and s.episode_meta(0)["seed"] == 0


def test_collect_vector_envs_keep_failed(tmp_path):
    # max_steps=3 cuts every episode short: all fail, and keep_failed stores them anyway
    cfg = CollectConfig(
        env=EnvConfig(cameras=["wrist"], image_size=16, depth=False),
        task=TaskConfig(name="push", max_episode_steps=3),
        episodes=3,
        num_envs=2,
        keep_failed=True,
        out=str(tmp_path / "f.zarr"),
    )
    summary = collect(cfg)
    assert summary["episodes"] == 3 and summary["success_rate"] == 0.0 and summary["attempts"] == 3
    s = EpisodeStore.open(tmp_path / "f.zarr")
    assert s.select(success=False) == [0, 1, 2] and s.num_frames == 9
    assert sorted(s.episode_meta(i)["seed"] for i in range(3)) == [0, 1, 2]


def test_recorder_requires_matching_observation(tmp_path):
    import gymnasium as gym

    import sim

    env = gym.make(sim.ENV_ID, task="pick", cameras=["static"], image_size=16, depth=True)
    feats = features_from_spaces(env.observation_space, env.action_space)
    env.close()
    assert set(feats) == {"images/static", "depth/static", "state", "action"}
    store = EpisodeStore.create(tmp_path / "r.zarr", feats, fps=10)
    rec = EpisodeRecorder(store)
    with pytest.raises(ValueError, match=r"lacks store features \['depth/static'"):
        rec.on_episode_start({"images/static": 0, "state": 0}, {})
    with pytest.raises(ValueError, match="must be open for appending"):
        EpisodeRecorder(EpisodeStore.open(tmp_path / "r.zarr"))


def test_collect_aux_records_where_the_object_and_goal_were(tmp_path):
    """`aux=true` records aux/scene per frame: the named object's and the goal's positions when that
    frame's observation was taken. Replaying episode 0's actions in a fresh env with its seed must read
    the same positions from the simulator's privileged state (two env processes recorded it)."""
    import gymnasium as gym

    import sim
    from sim.config import env_kwargs
    from vla.core.types import AUX_KEY, AUX_NAMES
    from vla.data.recorder import scene_targets

    out = tmp_path / "place.zarr"
    argv = ["task=place", "episodes=2", "num_envs=2", "env.image_size=32", "env.cameras=[static]", "aux=true"]
    assert cli.main(["collect", *argv, f"out={out}"]) == 0
    s = EpisodeStore.open(out)
    assert s.features[AUX_KEY].names == AUX_NAMES and s.features[AUX_KEY].shape == (6,)
    ep, seed = s.episode(0), s.episode_meta(0)["seed"]
    kwargs = env_kwargs(EnvConfig(image_size=32, cameras=["static"]), TaskConfig(name="place"))
    env = gym.make(sim.ENV_ID, **kwargs)
    try:
        _, info = env.reset(seed=seed)
        for t, action in enumerate(ep["action"]):
            np.testing.assert_allclose(ep[AUX_KEY][t], scene_targets(info), atol=1e-5, err_msg=f"frame {t}")
            _, _, _, _, info = env.step(action)
    finally:
        env.close()
    lifted = ep[AUX_KEY][:, 2].max() - ep[AUX_KEY][0, 2]
    assert lifted > 0.03  # the object was carried: its recorded position follows it
    goal = ep[AUX_KEY][:, 3:]  # the plate or tray does not move
    np.testing.assert_allclose(goal, np.repeat(goal[:1], len(goal), 0), atol=1e-3)

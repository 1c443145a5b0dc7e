"""The `env` and `task` config groups: presets compose against their schemas and build working envs."""

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from sim.config import EnvConfig, TaskConfig, env_kwargs, make_env
from sim.tasks import list_tasks
from vla.core.config import config_dir


def _compose(name, overrides=()):
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return compose(config_name=name, overrides=list(overrides))


def test_every_task_has_a_preset():
    for task in list_tasks():
        cfg = _compose(f"task/{task}").task
        assert cfg.name == task and cfg.split == "train" and cfg.max_episode_steps is None


def test_env_preset_builds_the_env():
    env_cfg = _compose("env/tabletop_224", ["env.image_size=24", "env.cameras=[wrist]"]).env
    task_cfg = _compose("task/place", ["task.split=heldout", "task.max_episode_steps=7"]).task
    env = make_env(env_cfg, task_cfg)
    obs, info = env.reset(seed=0)
    hold = np.array([0, 0, 0, 0, 0, 0, 1], np.float32)
    truncated = [env.step(hold)[3] for _ in range(7)]
    env.close()
    assert obs["images/wrist"].shape == (24, 24, 3) and "images/static" not in obs
    assert info["task"] == "place" and info["split"] == "heldout"
    assert truncated == [False] * 6 + [True]


def test_schema_rejects_bad_values_and_keys():
    with pytest.raises(Exception, match="image_size"):
        _compose("env/tabletop", ["env.image_size=big"])
    with pytest.raises(ValueError, match="unknown keys \\['colour'\\]"):
        env_kwargs({"colour": "red"}, TaskConfig())
    assert env_kwargs(EnvConfig(), TaskConfig(name="push"))["task"] == "push"

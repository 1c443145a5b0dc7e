"""Shared fixtures of the point-cloud tests: one real PyBullet table-top env, reset per test."""

import pytest

from sim.env import TabletopEnv


@pytest.fixture(scope="package")
def stack_env():
    env = TabletopEnv(task="stack", cameras=("static", "wrist"), image_size=96, segmentation=True)
    env.reset(seed=0)
    yield env
    env.close()

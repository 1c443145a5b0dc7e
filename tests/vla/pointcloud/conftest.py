"""Shared fixtures of the point-cloud tests: one real PyBullet table-top env, reset per test."""

import pytest

from sim.env import TabletopEnv


@pytest.fixture(scope="package")
def stack_env():
    env = TabletopEnv(task="stack", cameras=("static", "wrist"), image_size=96, segmentation=True)
    env.reset(seed=0)
    yield env
    env.close()


@pytest.fixture(autouse=True, scope="package")
def one_torch_thread():
    """Tiny models run several times faster on one thread when the CPU cores are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

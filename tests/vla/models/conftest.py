"""Tiny models run fastest single-threaded on a shared CPU; the previous thread count is restored. Also the
one real two-episode `pick` store (32 px, no depth) that the VLA tests overfit, collected once per session."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def pick_store(tmp_path_factory):
    """Two real expert `pick` episodes at 32 px (vla collect), shared by the token- and L1-head tests."""
    from vla.commands.collect import main as collect

    out = tmp_path_factory.mktemp("pick") / "two.zarr"
    args = ["task=pick", "episodes=2", "env.image_size=32", "env.depth=false", f"out={out}"]
    assert collect(args) == 0
    return out

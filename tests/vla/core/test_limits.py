"""Resource limits (issue 21, item 6): image size, env processes and episodes are bounded by what the
machine can hold, and a run over the bound is one ConfigError line with the estimate, raised before any
env process starts or anything is written (`vla collect`, `vla eval`)."""

from __future__ import annotations

import pytest

from sim.config import EnvConfig, check_env_resources, env_kwargs
from vla.cli import main as cli
from vla.core.config import ConfigError
from vla.core.limits import MAX_IMAGE_SIZE, check_rollout_resources, rollout_footprint

BASE = dict(image_size=128, cameras=["static", "wrist"], depth=True, segmentation=False, horizon=60)


def test_the_bounds_and_their_messages():
    fp = check_rollout_resources(**BASE, num_envs=2, episodes=20, memory=8 * 10**9, cpus=2)
    check_rollout_resources(**BASE, num_envs=2, episodes=1, memory=8 * 10**9, cpus=2)  # one env idles: fine
    assert fp.total_bytes == 2 * fp.per_env_bytes and fp.frame_bytes == 2 * 128 * 128 * 7
    cases = [
        (dict(image_size=16384), "env.image_size",
         r"env.image_size=16384 is above the limit of 1024 px \(one 16384x16384 frame takes 12.9 GB to "
         r"render per camera\)"),
        (dict(num_envs=9), "num_envs",
         r"num_envs=9 is above 4 env processes per core \(2 cores here: at most 8\)"),
        (dict(image_size=1024, num_envs=4, memory=4 * 10**9), "num_envs",
         r"num_envs=4, env.image_size=1024, 2 cameras, depth need about 4.7 GB of memory \(4 x \(250 MB per "
         r"process \+ 881 MB for a 60-step episode \+ 50 MB to render\)\), more than the 4.0 GB available"),
        (dict(episodes=10**6, out="/tmp/x.zarr", free_disk=10**10), "episodes",
         r"episodes=1000000 need at least 137.6 GB on disk at /tmp/x.zarr .* more than the 10.0 GB free"),
    ]  # fmt: skip
    for change, key, message in cases:
        kw = {**BASE, "num_envs": 2, "episodes": 20, "memory": 8 * 10**9, "cpus": 2, **change}
        with pytest.raises(ConfigError, match=message) as e:
            check_rollout_resources(**kw)
        assert e.value.key == key and "\n" not in str(e.value)


def test_the_estimate_grows_with_what_is_rendered_and_held():
    small = rollout_footprint(128, ["static"], False, False, 60, 1)
    assert rollout_footprint(256, ["static"], False, False, 60, 1).episode_bytes == 4 * small.episode_bytes
    assert rollout_footprint(128, ["static", "wrist"], True, True, 60, 3).total_bytes > 3 * small.total_bytes
    with pytest.raises(ConfigError, match="env.goal_image_size=4096"):
        env_kwargs(EnvConfig(goal_image_size=4096), {"name": "pick"})
    env_kwargs(EnvConfig(image_size=MAX_IMAGE_SIZE), {"name": "pick"})  # the limit itself is allowed
    assert check_env_resources(EnvConfig(), ["pick", "stack"], 1, 1).episode_bytes == 90 * 2 * 128 * 128 * 7


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["collect", "env.image_size=16384", "episodes=1"], "env.image_size=16384 is above the limit"),
        (["collect", "num_envs=500", "episodes=2"], "num_envs=500 is above 4 env processes per core"),
        (["eval", "num_envs=500", "episodes=2", "references=[]"], "num_envs=500 is above 4 env processes"),
        (["eval", "video_size=8192", "episodes=1", "references=[]"], "video_size=8192 is above the limit"),
    ],
)
def test_commands_refuse_before_starting(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert cli([*argv, f"out={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()

"""The goal-imagination wrapper: a real goal-conditioned tiny VLA and a real (tiny, briefly trained)
displacement goal-diffusion model run an `arrange_one` episode through `vla eval`; the goal is imagined
once per episode from the initial cloud and is what the VLA acts on; mismatched checkpoints are errors."""

import json

import numpy as np
import pytest
import torch

from vla.core.policy import list_policies, make_policy
from policies.vla import VLAPolicy
from vla.backbones.config import PointEncoderConfig
from vla.data.store import EpisodeStore
from vla.models.goal_diffusion import GoalDiffusion, GoalDiffusionConfig
from vla.training.goal_diffusion import train_goal_diffusion
from vla.pointcloud.goals import goal_set_from_store

N = 64
ENV = [
    "env.image_size=32",
    "env.cameras=[static]",
    "env.depth=true",
    f"env.goal_points={N}",
    "env.goal_image_size=64",
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """(goal-conditioned VLA run dir, displacement goal-diffusion checkpoint, store) from 3 real episodes."""
    from vla.cli import main as cli

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("imagine")
    store = root / "a.zarr"
    collect = ["collect", "task.name=arrange_one", "episodes=3", *ENV, "record_clouds=true",
               f"pointcloud.num_points={N}", f"out={store}"]  # fmt: skip
    assert cli(collect) == 0
    run = root / "run"
    train = ["train", str(store), f"out={run}", "cameras=[static]", "threads=1", "val_episodes=0",
             "trainer.steps=2", "trainer.batch_size=4", "trainer.save_every=2", "trainer.progress=false",
             "model.vision.image_size=32", "model.goal_points.num_groups=8"]  # fmt: skip
    assert cli(train) == 0
    goals, pcfg = goal_set_from_store(EpisodeStore.open(store))
    cfg = GoalDiffusionConfig(
        num_points=N, width=32, depth=1, heads=2, prediction="displacement", initial_point_tokens=False,
        points=PointEncoderConfig(num_groups=8, group_size=8, width=32),
    )  # fmt: skip
    torch.manual_seed(0)
    model = GoalDiffusion(cfg)
    train_goal_diffusion(model, goals, steps=5, batch_size=2, progress=False)
    gd = model.save_pretrained(root / "gd", extra_config={"goals": {"pointcloud": pcfg}})
    return run, gd, store


def test_registered():
    assert "goal_imagination" in list_policies()


def test_goal_is_imagined_once_per_episode_and_is_what_the_vla_sees(checkpoints):
    import gymnasium as gym

    import sim
    from sim.config import env_kwargs

    run, gd, _ = checkpoints
    policy = make_policy("goal_imagination", checkpoint=str(run), goal_checkpoint=str(gd), sample_steps=4)
    env_cfg = {
        "image_size": 32,
        "cameras": ["static"],
        "depth": True,
        "goal_points": N,
        "goal_image_size": 64,
    }
    env = gym.make(sim.ENV_ID, **env_kwargs(env_cfg, {"name": "arrange_one", "split": "heldout"}))
    obs, _ = env.reset(seed=1_000_000)
    policy.reset(seed=5)
    action = policy.select_action(obs)
    pts, cols = policy.imagined
    assert pts.shape == (N, 3) and pts.dtype == np.float32 and cols.dtype == np.uint8
    np.testing.assert_array_equal(cols, policy.initial.colors)  # displacement: colours ride along
    assert not np.array_equal(pts, obs["goal/points"])  # imagined, not the env's goal
    first = policy.imagined
    obs2, *_ = env.step(action)
    policy.select_action(obs2)
    assert policy.imagined is first  # once per episode
    direct = VLAPolicy.from_pretrained(run)
    direct.reset()
    np.testing.assert_array_equal(
        direct.select_action({**obs, "goal/points": pts, "goal/colors": cols}), action
    )
    policy.reset(seed=6)
    assert policy.imagined is None
    env.close()


def test_runs_an_episode_through_vla_eval(checkpoints, tmp_path):
    from vla.cli import main as cli

    run, gd, _ = checkpoints
    kwargs = [
        f"+policy_kwargs.checkpoint={run}",
        f"+policy_kwargs.goal_checkpoint={gd}",
        "+policy_kwargs.sample_steps=4",
    ]
    args = ["eval", "policy=goal_imagination", *kwargs, "tasks=[arrange_one]", "episodes=1",
            "max_episode_steps=3", "references=[]", "failure_videos=0", f"out={tmp_path}", "progress=false",
            *ENV]  # fmt: skip
    assert cli(args) == 0
    ep = json.loads((tmp_path / "results.json").read_text())["episodes"][0]
    assert ep["policy"] == "goal_imagination" and ep["error"] is None and ep["length"] == 3


def test_mismatched_checkpoints_are_clear_errors(checkpoints, tmp_path):
    run, gd, store = checkpoints
    small = GoalDiffusion(
        GoalDiffusionConfig(
            num_points=32, width=32, depth=1, heads=2, points=PointEncoderConfig(num_groups=8)
        )
    )
    small.save_pretrained(tmp_path / "gd32")
    with pytest.raises(ValueError, match=r"samples 32 points, but checkpoint .* reads goal clouds of 64"):
        make_policy("goal_imagination", checkpoint=str(run), goal_checkpoint=str(tmp_path / "gd32"))
    from vla.cli import main as cli

    plain = tmp_path / "plain"
    train = ["train", str(store), f"out={plain}", "cameras=[static]", "threads=1", "val_episodes=0",
             "trainer.steps=1", "trainer.batch_size=2", "trainer.save_every=1", "trainer.progress=false",
             "model.vision.image_size=32"]  # fmt: skip
    assert cli(train) == 0
    with pytest.raises(ValueError, match="not goal-conditioned"):
        make_policy("goal_imagination", checkpoint=str(plain), goal_checkpoint=str(gd))

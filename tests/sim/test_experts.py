"""Scripted experts solve their tasks on a few fixed seeds (the full 100-seed figure is a benchmark)."""

import pytest

from policies import Policy, make_policy
from sim.env import TabletopEnv
from sim.experts import make_expert
from sim.tasks import task_seeds
from vla.eval.rollout import run_episode

SEEDS = 3


@pytest.mark.parametrize("task", ["pick"])
def test_expert_solves_fixed_seeds(task):
    env = TabletopEnv(task=task, cameras=("static",), image_size=32, depth=False)
    expert = make_expert(task)
    assert isinstance(expert, Policy)
    results = [run_episode(env, expert, s) for s in task_seeds(task, "train", SEEDS)]
    env.close()
    assert all(r.success and r.error is None for r in results), results


def test_expert_is_in_the_policy_registry():
    assert make_policy("expert", task="pick").task == "pick"
    with pytest.raises(ValueError, match="unknown task"):
        make_policy("expert", task="juggle")

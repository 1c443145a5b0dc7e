"""The language check: an expert (which reads the swapped target from privileged state) follows every new
instruction and never the old one; an expert steered to the old target follows only the old one; a policy
that never moves follows neither; scenes without an alternative are skipped; a vector env gives the same
figures (the swap reaches its workers through the reset options)."""

import math

import pytest

from sim.experts import make_expert
from sim.tasks import swapped_layout
from vla.core.policy import ConstantPolicy
from vla.eval.language import language_check

STATE_ONLY = dict(split="heldout", cameras=(), depth=False)
SEEDS = [1_000_001, 1_000_003]


class OldInstructionExpert:
    """The task's expert, steered to the ORIGINAL target and goal of each seed (what a policy that ignores
    the new instruction and repeats the old one would do)."""

    def __init__(self, task: str, split: str):
        self.task, self.split, self.expert = task, split, make_expert(task)
        self.original = None

    def reset(self, seed=None):
        self.original = swapped_layout(self.task, self.split, seed)[0]
        self.expert.reset(seed)

    def select_action(self, obs, info=None):
        priv = {
            **info["privileged"],
            "target_index": self.original.target,
            "goal_index": self.original.goal_index,
        }
        return self.expert.select_action(obs, {**info, "privileged": priv})


def _check_keys(out, task, episodes):
    assert out["task"] == task and out["split"] == "heldout" and out["episodes"] == episodes
    for name in ("follows_new", "follows_old"):
        lo, hi = out[f"{name}_ci"]
        assert 0.0 <= lo <= out[f"{name}_rate"] <= hi <= 1.0


@pytest.mark.parametrize("task", ["place", "stack"])
def test_expert_follows_the_new_instruction_only(task):
    out = language_check(lambda i: make_expert(task), task, STATE_ONLY, SEEDS)
    _check_keys(out, task, 2)
    assert (out["follows_new"], out["follows_old"], out["skipped"], out["errors"]) == (2, 0, 0, 0)
    assert out["follows_new_ci"][1] == 1.0 and out["follows_old_ci"][0] == 0.0


def test_old_instruction_expert_follows_the_old_instruction_only():
    out = language_check(lambda i: OldInstructionExpert("place", "heldout"), "place", STATE_ONLY, SEEDS)
    assert (out["follows_new"], out["follows_old"]) == (0, 2)


def test_still_policy_follows_neither_and_unswappable_seeds_are_skipped():
    seeds = [1_000_014, *SEEDS]  # 1_000_014: no other object of a unique colour in pick_colour
    out = language_check(lambda i: ConstantPolicy(), "pick_colour", STATE_ONLY, seeds)
    _check_keys(out, "pick_colour", 2)
    assert (out["follows_new"], out["follows_old"], out["skipped"]) == (0, 0, 1)
    none = language_check(lambda i: ConstantPolicy(), "pick_concepts", STATE_ONLY, SEEDS)
    assert none["episodes"] == 0 and none["skipped"] == 2 and math.isnan(none["follows_new_rate"])
    with pytest.raises(ValueError, match="differs from task"):
        language_check(lambda i: ConstantPolicy(), "pick", {**STATE_ONLY, "task": "place"}, SEEDS)


def test_vector_env_passes_the_swap_to_its_workers():
    new = language_check(lambda i: make_expert("pick"), "pick", STATE_ONLY, SEEDS, num_envs=2)
    old = language_check(lambda i: OldInstructionExpert("pick", "heldout"), "pick", STATE_ONLY, SEEDS, 2)
    assert (new["episodes"], new["follows_new"], new["follows_old"]) == (2, 2, 0)
    assert (old["episodes"], old["follows_new"], old["follows_old"]) == (2, 0, 2)  # unswapped: (2, 2, 0)


class FailingPolicy:
    """Raises on its first action: every episode of the check ends in an error."""

    def reset(self, seed=None):
        pass

    def select_action(self, obs, info=None):
        raise RuntimeError("policy exploded")


def test_an_erroring_episode_counts_as_neither_and_says_why():
    out = language_check(lambda i: FailingPolicy(), "place", STATE_ONLY, SEEDS)
    assert (out["episodes"], out["errors"], out["follows_new"], out["follows_old"]) == (2, 2, 0, 0)
    assert sorted(e["seed"] for e in out["error_episodes"]) == SEEDS
    assert all("policy exploded" in e["error"] for e in out["error_episodes"])

"""The language check: does the instruction matter? Swap it for one naming another object of the same scene
(or another goal) and count how often the policy does what the new instruction says and how often it still
does what the old one said.

Each seed's scene is built as usual, then `Task.swapped` picks another target or goal in it and re-renders
the instruction with the same template (sim/tasks.py): pick / pick_colour lift another object whose name
(pick_colour: colour) is unique in the scene ("raise the purple cylinder off the table" -> "raise the yellow
block off the table", held-out seed 1000003 of pick_colour), place uses the other fixture (tray <-> plate),
push the other marker, stack swaps top and bottom. The env runs it through
`reset(options={"swap_instruction": True})`; its `is_success` judges the new instruction, and
`info["original_success"]` the old one on the same snapshots (same `success_hold` rule). `follows_old`
counts the episodes in which the old instruction's success held at any step (sticky), error-free ones
only, as `follows_new` counts error-free successes. Seeds whose scene offers no alternative are skipped
and counted; goal-specified and concept tasks have none at all.

Reading the two figures: a policy that grounds the instruction has `follows_new` near its normal success
rate and `follows_old` near 0; one that ignores the words repeats its habit, so `follows_old` sits near
its normal success rate and `follows_new` near what it achieves by accident. A worked example: of the
first 20 held-out `pick_colour` seeds, one (1000014: a yellow cube beside an orange cylinder and an
orange cube) has no other object of a unique colour and is skipped; say that in the 19 others the policy
lifts the newly named object 12 times and the originally named one 5 times:

    out = language_check(lambda i: make_policy("vla", checkpoint="outputs/train/pick_colour"),
                         "pick_colour", {"split": "heldout", "image_size": 64, "depth": False},
                         task_seeds("pick_colour", "heldout", 20))
    # {"task": "pick_colour", "split": "heldout", "episodes": 19, "skipped": 1, "errors": 0,
    #  "follows_new": 12, "follows_new_rate": 0.632, "follows_new_ci": [0.410, 0.809],
    #  "follows_old": 5,  "follows_old_rate": 0.263, "follows_old_ci": [0.118, 0.488]}

The intervals are 95% Wilson intervals (`vla.eval.metrics.wilson_interval`). With 19 episodes they are
wide: here they overlap (0.410 < 0.488), so more seeds are needed before calling the gap real.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from sim import ENV_ID
from sim.env import SWAP_INSTRUCTION
from sim.tasks import check_split, swapped_layout
from sim.vector import make_vector_env
from vla.core.rollout import EpisodeResult, run_rollouts
from vla.eval.metrics import wilson_interval


class OriginalSuccess:
    """Observer: whether `info["original_success"]` was true at any step of the episode (sticky), and the
    episode's result once it ends."""

    def __init__(self) -> None:
        self.followed = False
        self.result: EpisodeResult | None = None

    def on_episode_start(self, obs: Mapping[str, Any], info: Mapping[str, Any]) -> None:
        self.followed = bool(info.get("original_success", False))

    def on_step(
        self,
        obs: Mapping[str, Any],
        action: np.ndarray,
        reward: float,
        terminated: bool,
        truncated: bool,
        info: Mapping[str, Any],
    ) -> None:
        self.followed = self.followed or bool(info.get("original_success", False))

    def on_episode_end(self, result: EpisodeResult) -> None:
        self.result = result


def swappable_seeds(task: str, split: str, seeds: Sequence[int]) -> tuple[list[int], list[int]]:
    """(seeds whose scene has a swapped instruction, seeds without one), each in the given order."""
    usable, skipped = [], []
    for s in seeds:
        (usable if swapped_layout(task, split, int(s))[1] is not None else skipped).append(int(s))
    return usable, skipped


def _rate(k: int, n: int) -> float:
    return k / n if n else math.nan


def language_summary(
    task: str, split: str, watched: Sequence[OriginalSuccess], skipped: int
) -> dict[str, Any]:
    """The check's figures from the finished episodes' observers (an error-free episode counts)."""
    done = [w for w in watched if w.result is not None]
    clean = [w for w in done if w.result.error is None]
    new = sum(bool(w.result.success) for w in clean)
    old = sum(w.followed for w in clean)
    n = len(done)
    return {
        "task": task,
        "split": split,
        "episodes": n,
        "skipped": int(skipped),
        "errors": n - len(clean),
        # what went wrong, per episode that errored (the episode does not count as either)
        "error_episodes": [
            {"seed": w.result.seed, "error": w.result.error} for w in done if w.result.error is not None
        ],
        "follows_new": new,
        "follows_old": old,
        "follows_new_rate": _rate(new, n),
        "follows_old_rate": _rate(old, n),
        "follows_new_ci": list(wilson_interval(new, n)),
        "follows_old_ci": list(wilson_interval(old, n)),
    }


def language_check(
    make_policy: Callable[[int], Any],
    task: str,
    env_kwargs: Mapping[str, Any],
    seeds: Sequence[int],
    num_envs: int = 1,
) -> dict[str, Any]:
    """Run `make_policy(i)` (sub-env i's policy, as `run_rollouts` builds it) on the swapped version of
    each seed's scene of `task`, in envs made with `env_kwargs` (their `split`, default "train"; a `task`
    entry must equal `task`), `num_envs` > 1 in an AsyncVectorEnv. Returns the figures of
    `language_summary` (see the module docstring); skipped seeds run no episode."""
    if env_kwargs.get("task", task) != task:
        raise ValueError(f"language_check: env_kwargs task {env_kwargs['task']!r} differs from task {task!r}")
    if num_envs < 1:
        raise ValueError(f"num_envs: expected >= 1, got {num_envs}")
    kwargs = {**env_kwargs, "task": task}
    split = check_split(str(kwargs.get("split", "train")))
    usable, skipped = swappable_seeds(task, split, seeds)
    watched: list[OriginalSuccess] = []

    def observers(seed: int) -> list[OriginalSuccess]:
        watched.append(OriginalSuccess())
        return [watched[-1]]

    if usable:
        env = gym.make(ENV_ID, **kwargs) if num_envs == 1 else make_vector_env(num_envs, **kwargs)
        try:
            run_rollouts(env, make_policy, usable, observers, reset_options={SWAP_INSTRUCTION: True})
        finally:
            env.close()
    return language_summary(task, split, watched, len(skipped))

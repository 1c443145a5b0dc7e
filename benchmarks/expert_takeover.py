"""Benchmark: which steps does a policy get wrong? Closed loop, with the expert's action for the first steps.

A policy that fails may fail anywhere: at its first steps, where the hand at its start pose must head for
the right object, or later, where it must grasp, carry and release. For `--episodes` seeds of each task this
runs the policy twice from the same scene: alone, and with the scripted expert's values of some action
dimensions (`--dims`, default 0,1: the x/y translation) in place of the policy's for `--steps` steps from
step `--start` (default 0: the first steps); the expert runs beside the policy and reads the env's
privileged state, which the policy never sees.
If the takeover of the first 3 steps lifts success from 5 to 19 of 30, those steps are where the policy
fails (issue 17, session 18: the four-task model's push). Prints ONE JSON line: per task, successes alone and
with the takeover.

    python benchmarks/expert_takeover.py --checkpoint RUN --tasks pick,push --episodes 30 --steps 3
    python benchmarks/expert_takeover.py --checkpoint RUN --tasks push --dims 0,1,5 --steps 1000  # all along
    python benchmarks/expert_takeover.py --checkpoint RUN --tasks place --start 3 --steps 1000     # after 3
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

import sim
from sim.experts import make_expert
from sim.tasks import task_seeds
from vla.core.policy import make_policy


def run_with_takeover(
    env: Any, policy: Any, task: str, seed: int, dims: Sequence[int], steps: int, start: int = 0
) -> bool:
    """One episode of `policy` from `env.reset(seed)` in which, for `steps` steps from step `start` (0: the
    first), the action's `dims` are the expert's; True when it succeeds. `steps=0` is the policy alone."""
    obs, info = env.reset(seed=int(seed))
    policy.reset(int(seed))
    expert = make_expert(task)
    expert.reset(int(seed))
    for t in range(int(env.unwrapped.horizon)):
        action = np.array(policy.select_action(obs, info), dtype=np.float32)  # a copy: never the policy's
        label = expert.select_action(obs, info)  # every step, so the expert's phase follows the episode
        if start <= t < start + steps:
            action[list(dims)] = label[list(dims)]
        obs, _, terminated, truncated, info = env.step(action)
        if info.get("is_success", False):
            return True
        if terminated or truncated:
            return False
    return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="a training run or checkpoint dir, or random")
    ap.add_argument("--tasks", default="pick,place,push,stack")
    ap.add_argument("--split", default="heldout")
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--dims", default="0,1", help="action dimensions the expert takes over (0,1: x/y)")
    ap.add_argument("--steps", type=int, default=3, help="for this many steps")
    ap.add_argument("--start", type=int, default=0, help="from this step (0: the first)")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--cameras", default="static,wrist")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.checkpoint == "random":
        policy = make_policy("random")
    else:
        from policies.vla import VLAPolicy

        policy = VLAPolicy.from_pretrained(args.checkpoint)
    dims = [int(d) for d in args.dims.split(",") if d]
    cams = tuple(c for c in args.cameras.split(",") if c)
    out: dict[str, Any] = {
        "benchmark": "expert_takeover",
        "checkpoint": args.checkpoint,
        "split": args.split,
        "dims": dims,
        "start": args.start,
        "steps": args.steps,
        "tasks": {},
    }
    for task in [t for t in args.tasks.split(",") if t]:
        env = gym.make(
            sim.ENV_ID, task=task, split=args.split, cameras=cams, image_size=args.image_size, depth=False
        )
        try:
            seeds = task_seeds(task, args.split, args.episodes)
            alone = sum(run_with_takeover(env, policy, task, s, dims, 0) for s in seeds)
            helped = sum(run_with_takeover(env, policy, task, s, dims, args.steps, args.start) for s in seeds)
        finally:
            env.close()
        out["tasks"][task] = {"episodes": len(seeds), "alone": alone, "with_takeover": helped}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

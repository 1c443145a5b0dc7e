"""Benchmark: scripted-expert success rate per task over N seeds (default 100) of a split.

Prints ONE JSON line: {"benchmark": "expert_success", "split": ..., "seeds": N, "noise": ...,
"success": {task: rate}, "mean_length": {task: steps}, "errors": {task: n}, "failed_seeds": {...},
"goal_cloud_ms": {goal task: median ms to render its goal cloud}, "wall_s": ...}. Rendering does not
affect the experts (they read privileged state), so the env runs state-only (cameras=()) to keep this
fast; the goal-specified tasks (`arrange`, `stack_goal`, in every task list by default) still render
their goal point cloud once per reset from the static camera (224x224 -> 1024 points).

    python benchmarks/expert_success.py                       # 100 train seeds, every task
    python benchmarks/expert_success.py --seeds 20 --tasks pick stack --split heldout --noise 0.003
    python benchmarks/expert_success.py --tasks arrange stack_goal       # the goal-specified tasks only
    python benchmarks/expert_success.py --tasks place --action-noise 0.01  # under DART actuation noise
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import sim
from sim.experts import make_expert
from vla.core.rollout import run_episode
from vla.eval.metrics import summarize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--tasks", nargs="+", default=sim.list_tasks())
    ap.add_argument("--split", default="train")
    ap.add_argument("--noise", type=float, default=0.0)
    ap.add_argument("--action-noise", type=float, default=0.0, help="env actuation noise (DART data), m")
    args = ap.parse_args()
    t0 = time.perf_counter()
    results, failed, goal_ms = [], {}, {}
    for task in args.tasks:
        kw = dict(task=task, split=args.split, cameras=(), depth=False, action_noise=args.action_noise)
        env = gym.make(sim.ENV_ID, **kw)
        expert = make_expert(task, noise=args.noise, seed=1)
        seeds = sim.task_seeds(task, args.split, args.seeds)
        for seed in tqdm(seeds, desc=task, unit="ep", leave=False):
            r = run_episode(env, expert, seed)
            if env.unwrapped.task.has_goal_cloud:  # time one goal-cloud render (as at reset) per episode
                t1 = time.perf_counter()
                env.unwrapped.render_goal_cloud()
                goal_ms.setdefault(task, []).append(1000 * (time.perf_counter() - t1))
            results.append(r)
            if not r.success:
                failed.setdefault(task, []).append(seed)
        env.close()
    summary = summarize(results)
    print(
        json.dumps(
            {
                "benchmark": "expert_success",
                "split": args.split,
                "seeds": args.seeds,
                "noise": args.noise,
                "action_noise": args.action_noise,
                "success": {t: s["success_rate"] for t, s in summary.items()},
                "mean_length": {t: round(s["mean_length"], 1) for t, s in summary.items()},
                "errors": {t: s["errors"] for t, s in summary.items()},
                "failed_seeds": failed,
                "goal_cloud_ms": {t: round(float(np.median(v)), 1) for t, v in goal_ms.items()},
                "wall_s": round(time.perf_counter() - t0, 1),
            }
        )
    )


if __name__ == "__main__":
    main()

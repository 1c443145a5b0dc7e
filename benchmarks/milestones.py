"""Benchmark: where do a policy's closed-loop episodes stop? Milestones of each episode, from the simulator.

Success alone says that a `place` policy fails, not where: it may never reach the object, grasp and never
lift, carry the object to the goal and hover there, or drop it beside the goal. For `--episodes` seeds of
`--task` this runs the policy (a checkpoint, or `expert`/`random`) and reads the env's privileged state
after every step (never shown to the policy):

- `held`: the fingers touch the named object while not fully closed (steps; first step);
- `lifted`: the object's highest centre above the table (m);
- `near_goal`: steps with the object within 4 cm (xy) of the goal (place, stack, push: the goal
  fixture or object; pick: no goal);
- `success`, `length`.

It prints ONE JSON line (counts of episodes that reached each milestone, and the rows with `--rows`).
Session 7 used it to find that place policies carried the object to the goal and hovered there (the
experts' lowering began only within 8 mm of the goal), then that they missed the object's x/y.

    python benchmarks/milestones.py --checkpoint outputs/demo/train --task place --split train --episodes 12
    python benchmarks/milestones.py --checkpoint expert --task stack --episodes 5 --rows
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import gymnasium as gym
import numpy as np

import sim
from sim.tasks import task_seeds
from vla.core.policy import make_policy

GOAL_RADIUS = 0.04  # metres (xy) from the goal that count as "near"


def episode_milestones(env: Any, policy: Any, seed: int) -> dict[str, Any]:
    """Run one episode of `policy` from `env.reset(seed)`; return its milestones (see the module doc)."""
    obs, info = env.reset(seed=int(seed))
    policy.reset(int(seed))
    horizon = int(env.unwrapped.horizon)
    held, first_held, lifted, near, success, t = 0, None, 0.0, 0, False, 0
    for t in range(1, horizon + 1):
        obs, _, terminated, truncated, info = env.step(policy.select_action(obs, info))
        p = info["privileged"]
        i = int(p["target_index"])
        pos = np.asarray(p["object_poses"][i][:3], dtype=np.float64)
        if bool(p["object_touching"][i]) and float(p["gripper_width"]) > 0.006:
            held += 1
            first_held = t if first_held is None else first_held
        lifted = max(lifted, float(pos[2]))
        if p.get("goal_name") != "lift":
            near += int(np.linalg.norm(pos[:2] - np.asarray(p["goal_position"][:2])) < GOAL_RADIUS)
        success = success or bool(info.get("is_success", False))
        if terminated or truncated:
            break
    return {
        "seed": int(seed),
        "success": success,
        "length": t,
        "held": held,
        "first_held": first_held,
        "lifted": round(lifted, 3),
        "near_goal": near,
    }


def summarise(rows: list[dict[str, Any]], lift: float = 0.08) -> dict[str, int]:
    """Episodes that reached each milestone."""
    return {
        "episodes": len(rows),
        "held": sum(r["held"] > 0 for r in rows),
        f"lifted_above_{lift}": sum(r["lifted"] > lift for r in rows),
        "near_goal": sum(r["near_goal"] > 0 for r in rows),
        "success": sum(r["success"] for r in rows),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="a training run or checkpoint dir, or expert / random")
    ap.add_argument("--task", default="place")
    ap.add_argument("--split", default="heldout")
    ap.add_argument("--episodes", type=int, default=12)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--cameras", default="static,wrist")
    ap.add_argument("--rows", action="store_true", help="include every episode's milestones")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.checkpoint in ("expert", "random"):
        kw = {"task": args.task} if args.checkpoint == "expert" else {}
        policy = make_policy(args.checkpoint, **kw)
    else:
        from policies.vla import VLAPolicy

        policy = VLAPolicy.from_pretrained(args.checkpoint)
    cams = tuple(c for c in args.cameras.split(",") if c)
    env = gym.make(sim.ENV_ID, task=args.task, split=args.split, cameras=cams, image_size=args.image_size, depth=False)
    try:
        rows = [episode_milestones(env, policy, s) for s in task_seeds(args.task, args.split, args.episodes)]
    finally:
        env.close()
    out: dict[str, Any] = {"checkpoint": args.checkpoint, "task": args.task, "split": args.split, **summarise(rows)}
    if args.rows:
        out["rows"] = rows
    print(json.dumps(out))


if __name__ == "__main__":
    main()

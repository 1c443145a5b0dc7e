"""Benchmark: where do a policy's closed-loop episodes stop? Milestones of each episode, from the simulator.

Success alone says that a `place` policy fails, not where: it may never reach the object, grasp and never
lift, carry the object to the goal and hover there, or drop it beside the goal. For `--episodes` seeds of
`--task` this runs the policy (a checkpoint, or `expert`/`random`) and reads the env's privileged state
after every step (never shown to the policy):

- `held`: the fingers touch the named object while not fully closed (steps; first step);
- `held_other`: steps the fingers touch another object while not fully closed (the wrong one grasped);
- `lifted`: the object's highest centre above the table (m);
- `near_goal`: steps with the object within 4 cm (xy) of the goal (place, stack, push: the goal
  fixture or object; pick: no goal); `closest_goal`: the smallest such distance (m);
- `near_other`: steps with the object within 4 cm (xy) of another candidate goal and not of the goal
  (another fixture; for stack, another object): the policy carried it to the wrong place;
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
    held, held_other, first_held, lifted, success, t = 0, 0, None, 0.0, False, 0
    near, other, closest = 0, 0, np.inf
    for t in range(1, horizon + 1):
        obs, _, terminated, truncated, info = env.step(policy.select_action(obs, info))
        p = info["privileged"]
        i = int(p["target_index"])
        pos = np.asarray(p["object_poses"][i][:3], dtype=np.float64)
        grips = float(p["gripper_width"]) > 0.006  # not fully closed: a touched object is between the fingers
        if grips and bool(p["object_touching"][i]):
            held += 1
            first_held = t if first_held is None else first_held
        held_other += int(grips and any(bool(x) for j, x in enumerate(p["object_touching"]) if j != i))
        lifted = max(lifted, float(pos[2]))
        if p.get("goal_name") != "lift":
            d = float(np.linalg.norm(pos[:2] - np.asarray(p["goal_position"][:2])))
            near += int(d < GOAL_RADIUS)
            closest = min(closest, d)
            alt = _other_goals(p)  # [K,2]
            if d >= GOAL_RADIUS and len(alt):
                other += int(np.min(np.linalg.norm(alt - pos[:2], axis=1)) < GOAL_RADIUS)
        success = success or bool(info.get("is_success", False))
        if terminated or truncated:
            break
    return {
        "seed": int(seed),
        "success": success,
        "length": t,
        "held": held,
        "held_other": held_other,
        "first_held": first_held,
        "lifted": round(lifted, 3),
        "near_goal": near,
        "closest_goal": round(closest, 3) if np.isfinite(closest) else None,
        "near_other": other,
    }


def _other_goals(p: dict[str, Any]) -> np.ndarray:
    """The xy [K,2] of the candidate goals that are not this episode's goal: the other fixtures (place,
    push) or, for an object goal (stack), the objects other than the goal and the one carried."""
    if p["goal_kind"] == "fixture":
        pts = [f for j, f in enumerate(p["fixture_positions"]) if j != int(p["goal_index"])]
    elif p["goal_kind"] == "object":
        skip = {int(p["goal_index"]), int(p["target_index"])}
        pts = [o for j, o in enumerate(p["object_poses"]) if j not in skip]
    else:
        pts = []
    return np.asarray([np.asarray(q[:2], dtype=np.float64) for q in pts]).reshape(-1, 2)


def summarise(rows: list[dict[str, Any]], lift: float = 0.08) -> dict[str, int]:
    """Episodes that reached each milestone."""
    return {
        "episodes": len(rows),
        "held": sum(r["held"] > 0 for r in rows),
        "held_other": sum(r["held_other"] > 0 for r in rows),
        f"lifted_above_{lift}": sum(r["lifted"] > lift for r in rows),
        "near_goal": sum(r["near_goal"] > 0 for r in rows),
        "near_other": sum(r["near_other"] > 0 for r in rows),
        "success": sum(r["success"] for r in rows),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--checkpoint", required=True, help="a training run or checkpoint dir, or expert / random"
    )
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
    env = gym.make(
        sim.ENV_ID, task=args.task, split=args.split, cameras=cams, image_size=args.image_size, depth=False
    )
    try:
        rows = [episode_milestones(env, policy, s) for s in task_seeds(args.task, args.split, args.episodes)]
    finally:
        env.close()
    out: dict[str, Any] = {
        "checkpoint": args.checkpoint,
        "task": args.task,
        "split": args.split,
        **summarise(rows),
    }
    if args.rows:
        out["rows"] = rows
    print(json.dumps(out))


if __name__ == "__main__":
    main()

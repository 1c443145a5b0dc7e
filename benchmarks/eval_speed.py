"""Benchmark: closed-loop evaluation throughput (episodes/min) with 1 and 2 env processes.

Runs `vla eval`'s `evaluate()` on held-out seeds of one task, for each `--num-envs` value, with a VLA
checkpoint (`--checkpoint RUN`: the policy runs in the main process, one torch thread) or a registry
policy (`--policy expert|random`). No reference policies, no videos. Prints ONE JSON line with
episodes/min, steps/s, success and the policy's p50 latency per setting.

    python benchmarks/eval_speed.py --checkpoint outputs/demo/train --episodes 20
    python benchmarks/eval_speed.py --policy expert --task pick --episodes 20
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from sim.config import EnvConfig
from vla.commands.eval import EvalConfig, evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--policy", default="expert")
    ap.add_argument("--task", default="pick_colour")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--num-envs", default="1,2")
    ap.add_argument("--image-size", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for n in (int(x) for x in args.num_envs.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = EvalConfig(
                env=EnvConfig(image_size=args.image_size, depth=False),
                policy=args.policy,
                checkpoint=args.checkpoint,
                tasks=[args.task],
                episodes=args.episodes,
                num_envs=n,
                references=[],
                failure_videos=0,
                success_videos=0,
                out=tmp,
                progress=False,
            )
            t0 = time.perf_counter()
            res = evaluate(cfg)
            wall = time.perf_counter() - t0
        m = res["per_policy"][res["policy"]]["tasks"][args.task]
        steps = sum(e["length"] for e in res["episodes"])
        rows.append(
            {
                "num_envs": n,
                "episodes_per_min": round(60.0 * args.episodes / wall, 1),
                "steps_per_s": round(steps / wall, 1),
                "success_rate": round(m["success_rate"], 3),
                "latency_p50_ms": round(m["latency_p50_ms"], 2),
                "wall_s": round(wall, 1),
            }
        )
    print(
        json.dumps(
            {
                "benchmark": "eval_speed",
                "policy": "vla" if args.checkpoint else args.policy,
                "checkpoint": args.checkpoint,
                "task": args.task,
                "split": "heldout",
                "episodes": args.episodes,
                "image_size": args.image_size,
                "runs": rows,
            }
        )
    )


if __name__ == "__main__":
    main()

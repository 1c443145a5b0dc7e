"""Benchmark: `vla collect` throughput (episodes/min, frames/s) and store bytes per frame.

Runs the scripted pick expert through the vector rollout loop (`num_envs` sub-processes) with two
128x128 cameras, recording successful episodes into a temporary store. Prints ONE JSON line.

    python benchmarks/data_collect.py --episodes 20 --num-envs 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from sim.config import EnvConfig, TaskConfig
from vla.commands.collect import CollectConfig, collect


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="pick")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--num-envs", type=int, default=2)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--cameras", default="static,wrist")
    ap.add_argument("--depth", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = CollectConfig(
            env=EnvConfig(cameras=args.cameras.split(","), image_size=args.image_size, depth=args.depth),
            task=TaskConfig(name=args.task),
            episodes=args.episodes,
            num_envs=args.num_envs,
            out=str(Path(tmp) / "demos.zarr"),
        )
        s = collect(cfg)
    print(
        json.dumps(
            {
                "benchmark": "data_collect",
                "task": args.task,
                "num_envs": args.num_envs,
                "image_size": args.image_size,
                "cameras": cfg.env.cameras,
                "depth": args.depth,
                "episodes": s["episodes"],
                "attempts": s["attempts"],
                "success_rate": round(s["success_rate"], 3),
                "frames": s["frames"],
                "wall_s": round(s["wall_s"], 1),
                "episodes_per_min": round(s["episodes_per_min"], 1),
                "frames_per_s": round(s["frames"] / s["wall_s"], 1),
                "bytes_per_frame": round(s["bytes_per_frame"]),
            }
        )
    )


if __name__ == "__main__":
    main()

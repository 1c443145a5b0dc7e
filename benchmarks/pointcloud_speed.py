"""Benchmark: point-cloud pipeline time per frame, 224x224 depth -> 1,024 points (goal: <= 30 ms).

Renders frames of the table-top env (several seeds, the arm moving), then times `PointCloudPipeline.process`
alone (rendering excluded) for: the static camera with the table kept (`pointcloud/scene`: the most points
reach the voxel grid and FPS), the static camera with the table removed (`pointcloud/default`), and the
static + wrist cameras fused (table kept). Wall time and process CPU time per frame are both reported: the
machine's 2 cores are shared, so wall time includes waiting for a core; CPU time is what a free core needs.
Prints ONE JSON line.

    python benchmarks/pointcloud_speed.py [--frames 40] [--size 224] [--points 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from sim.env import TabletopEnv
from vla.core.config import compose, to_dataclass
from vla.pointcloud import PointCloudConfig, PointCloudPipeline, frames_from_env


def _frames(size: int, n: int) -> list[list]:
    env = TabletopEnv(task="stack", cameras=("static", "wrist"), image_size=size)
    out = []
    try:
        for i in range(n):
            obs, _ = env.reset(seed=i)
            for _ in range(i % 4):
                obs, *_ = env.step(np.array([0.01, 0.0, -0.02, 0, 0, 0, 1], np.float32))
            out.append(frames_from_env(env, obs, ["static", "wrist"]))
    finally:
        env.close()
    return out


def _time(pipe: PointCloudPipeline, frames: list[list], cams: int) -> dict[str, float]:
    pipe.process(frames[0][:cams], seed=0)  # warm-up (open3d import, ray cache)
    wall, cpu, unique = [], [], []
    for i, f in enumerate(frames):
        t0, c0 = time.perf_counter(), time.process_time()
        cloud = pipe.process(f[:cams], seed=i)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        unique.append(cloud.num_unique)
    return {
        "ms_median": round(1e3 * float(np.median(wall)), 2),
        "ms_p90": round(1e3 * float(np.percentile(wall, 90)), 2),
        "cpu_ms_median": round(1e3 * float(np.median(cpu)), 2),
        "unique_points_min": int(np.min(unique)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--points", type=int, default=1024)
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    frames = _frames(args.size, args.frames)
    cfgs = {
        name: to_dataclass(compose(f"pointcloud/{name}").pointcloud, PointCloudConfig)
        for name in ("scene", "default")
    }
    for c in cfgs.values():
        c.num_points = args.points
    result = {
        "benchmark": "pointcloud_speed",
        "image": f"{args.size}x{args.size}",
        "num_points": args.points,
        "frames": args.frames,
        "static_table_kept": _time(PointCloudPipeline(cfgs["scene"]), frames, 1),
        "static_table_removed": _time(PointCloudPipeline(cfgs["default"]), frames, 1),
        "static_wrist_fused_table_kept": _time(PointCloudPipeline(cfgs["scene"]), frames, 2),
        "goal_ms": 30,
        "load_avg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

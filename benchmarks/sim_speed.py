"""Benchmark: control steps/s of the table-top env (TinyRenderer) and the 2-process vector speed-up.

Prints ONE JSON line: steps/s of one env with one static camera (+ depth) at 128x128 and 224x224, steps/s
(summed over sub-envs) of a 2-process AsyncVectorEnv at 128x128, the speed-up, and the 1-minute load
average at the start and the end (the machine's 2 cores are shared, so contention lowers the figures).

    python benchmarks/sim_speed.py [--steps 150]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import gymnasium as gym
import numpy as np

import sim
from sim.vector import make_vector_env

ACTIONS = np.array(  # a small square motion, gripper toggling: exercises IK, contacts and the renderer
    [
        [0.02, 0, -0.01, 0, 0, 0.05, 1],
        [0, 0.02, 0, 0, 0, 0, 0],
        [-0.02, 0, 0.01, 0, 0, -0.05, 1],
        [0, -0.02, 0, 0, 0, 0, 0],
    ],
    dtype=np.float32,
)


def single_env(size: int, steps: int) -> float:
    env = gym.make(sim.ENV_ID, task="pick", cameras=("static",), image_size=size, depth=True)
    env.reset(seed=0)
    env.step(ACTIONS[0])  # warm-up
    t = time.perf_counter()
    for i in range(steps):
        _, _, term, trunc, _ = env.step(ACTIONS[i % 4])
        if term or trunc:
            env.reset(seed=i)
    rate = steps / (time.perf_counter() - t)
    env.close()
    return rate


def vector_env(n: int, size: int, steps: int) -> float:
    venv = make_vector_env(n, task="pick", cameras=("static",), image_size=size, depth=True)
    venv.reset(seed=list(range(n)))
    venv.step(np.stack([ACTIONS[0]] * n))
    t = time.perf_counter()
    for i in range(steps):
        venv.step(np.stack([ACTIONS[i % 4]] * n))
    rate = n * steps / (time.perf_counter() - t)
    venv.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    s128 = single_env(128, args.steps)
    s224 = single_env(224, args.steps)
    v128 = vector_env(2, 128, args.steps)
    print(
        json.dumps(
            {
                "benchmark": "sim_speed",
                "renderer": "tiny",
                "steps": args.steps,
                "steps_per_s_128": round(s128, 2),
                "steps_per_s_224": round(s224, 2),
                "vector2_steps_per_s_128": round(v128, 2),
                "vector2_speedup": round(v128 / s128, 2),
                "cpu_count": os.cpu_count(),
                "load_avg_1m_start": round(load0, 2),
                "load_avg_1m_end": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()

"""Benchmark: control steps/s of the table-top env (TinyRenderer) and the 2-process vector speed-up.

Prints ONE JSON line: steps/s of one env with one static camera (+ depth) at 128x128 and 224x224, steps/s
(summed over sub-envs) of a 2-process AsyncVectorEnv at 128x128, the speed-up, and the 1-minute load
average at the start and the end (the machine's 2 cores are shared, so contention lowers the figures).
CPU-time figures (steps per CPU-second) estimate what free cores would deliver; the speed-up estimate
`vector2_speedup_if_2_free_cores` = 2 x worker steps per CPU-second / single-env steps per CPU-second
(the workers' CPU time includes start-up and reset, so it errs low).

    python benchmarks/sim_speed.py [--steps 150] [--robot-visuals simple|full]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def _env_kwargs(size: int, visuals: str) -> dict:
    return dict(task="pick", cameras=("static",), image_size=size, depth=True, robot_visuals=visuals)


def single_env(size: int, steps: int, visuals: str) -> tuple[float, float]:
    """(wall-clock steps/s, steps per CPU-second of this process)."""
    env = gym.make(sim.ENV_ID, **_env_kwargs(size, visuals))
    env.reset(seed=0)
    env.step(ACTIONS[0])  # warm-up
    t, c = time.perf_counter(), time.process_time()
    for i in range(steps):
        _, _, term, trunc, _ = env.step(ACTIONS[i % 4])
        if term or trunc:
            env.reset(seed=i)
    rate, cpu_rate = steps / (time.perf_counter() - t), steps / (time.process_time() - c)
    env.close()
    return rate, cpu_rate


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def vector_env(n: int, size: int, steps: int, visuals: str) -> tuple[float, float, float]:
    """(wall-clock env-steps/s summed over sub-envs, env-steps per CPU-second of a worker,
    main-process CPU milliseconds per vector step: pickling and piping observations)."""
    cpu0 = _children_cpu()
    venv = make_vector_env(n, **_env_kwargs(size, visuals))
    venv.reset(seed=list(range(n)))
    venv.step(np.stack([ACTIONS[0]] * n))
    t, c = time.perf_counter(), time.process_time()
    for i in range(steps):
        venv.step(np.stack([ACTIONS[i % 4]] * n))
    rate = n * steps / (time.perf_counter() - t)
    main_ms = 1000 * (time.process_time() - c) / steps
    venv.close()  # joins the workers, so their CPU time is counted in RUSAGE_CHILDREN
    worker_cpu = _children_cpu() - cpu0  # includes start-up, reset and warm-up: a pessimistic figure
    return rate, n * (steps + 1) / worker_cpu, main_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--robot-visuals", default="simple", choices=["simple", "full"])
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    vis = args.robot_visuals
    s128, c128 = single_env(128, args.steps, vis)
    s224, c224 = single_env(224, args.steps, vis)
    v128, vc128, main_ms = vector_env(2, 128, args.steps, vis)
    print(
        json.dumps(
            {
                "benchmark": "sim_speed",
                "renderer": "tiny",
                "robot_visuals": vis,
                "steps": args.steps,
                "steps_per_s_128": round(s128, 2),
                "steps_per_s_224": round(s224, 2),
                "vector2_steps_per_s_128": round(v128, 2),
                "vector2_speedup": round(v128 / s128, 2),
                # Contention-free estimates: steps per CPU-second (what one free core would deliver).
                "steps_per_cpu_s_128": round(c128, 2),
                "steps_per_cpu_s_224": round(c224, 2),
                "vector2_worker_steps_per_cpu_s_128": round(vc128, 2),
                "vector2_speedup_if_2_free_cores": round(2 * vc128 / c128, 2),
                "vector2_main_cpu_ms_per_step": round(main_ms, 2),
                "cpu_count": os.cpu_count(),
                "load_avg_1m_start": round(load0, 2),
                "load_avg_1m_end": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()

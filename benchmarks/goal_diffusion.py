"""Benchmark: goal imagination on held-out scenes: Chamfer / F-score of imagined goal clouds vs. the true
goals, next to the copy-the-initial-cloud baseline (a model that imagines no change).

Generates goal-scene triples with the scripted experts (train split for training, held-out split for
evaluation, `vla.pointcloud.goals`), trains a small `GoalDiffusion` on CPU from `configs/goal_diffusion.yaml`
(overrides below), samples one imagined goal per held-out triple (DDIM; from pure noise, strength 1, and
from the noised initial cloud, strength < 1, SDEdit) and scores it. A bootstrap 95% interval over scenes
is given for the difference imagined - baseline Chamfer (negative = better than copying). Per task figures
are included. Prints ONE JSON line.

    python benchmarks/goal_diffusion.py [--train-episodes 12] [--heldout-episodes 4] [--steps 1500] \
        [--points 128] [--ddim-steps 50] [--overrides model.width=96 ...] [--cache DIR]
    python benchmarks/goal_diffusion.py --cache outputs/goal_cache --snap 0 0.02 \
        --overrides model.prediction=displacement model.initial_point_tokens=false   # displacement model
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from vla.core.config import compose, to_dataclass
from vla.models.goal_diffusion import GoalDiffusion
from vla.commands.goals import GoalsConfig
from vla.training.goal_diffusion import evaluate_goals, train_goal_diffusion
from vla.pointcloud.goals import GoalSet, generate_goal_scenes
from vla.pointcloud.metrics import chamfer_distance, f_score

TASKS = ["pick", "place", "push", "stack"]


def _per_task(pred: np.ndarray, goals) -> dict[str, dict[str, float]]:
    """Mean Chamfer (m) and F-score@1cm of predicted clouds [E,N,3] vs. the true goals, per task."""
    out = {}
    for task in TASKS:
        m = goals.task == task
        if m.any():
            out[task] = {
                "chamfer": round(float(chamfer_distance(pred[m], goals.goal_points[m]).mean()), 4),
                "f": round(float(f_score(pred[m], goals.goal_points[m], 0.01).mean()), 3),
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-episodes", type=int, default=12)
    ap.add_argument("--heldout-episodes", type=int, default=4)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--points", type=int, default=128)
    ap.add_argument("--ddim-steps", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--strengths", type=float, nargs="*", default=[1.0, 0.5, 0.25])
    ap.add_argument("--overrides", nargs="*", default=[])
    ap.add_argument("--snap", type=float, nargs="*", default=[0.0], help="displacement snap (m), per run")
    ap.add_argument("--cache", default="", help="directory to keep/reuse the generated goal scenes (.npz)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load0 = os.getloadavg()[0]
    overrides = [f"pointcloud.num_points={args.points}", "model.width=96", "model.depth=3", *args.overrides]
    cfg = to_dataclass(compose("goal_diffusion", overrides), GoalsConfig)
    t0 = time.perf_counter()
    sets = {}
    for split, n in (("train", args.train_episodes), ("heldout", args.heldout_episodes)):
        path = Path(args.cache) / f"{split}_{n}x{len(TASKS)}_{args.points}.npz" if args.cache else None
        if path is not None and path.is_file():
            sets[split] = GoalSet.load(path)
        else:
            sets[split] = generate_goal_scenes(TASKS, n, split, cfg.pointcloud, 128, progress=False)
            if path is not None:
                sets[split].save(path)
    train, heldout = sets["train"], sets["heldout"]
    t_data = time.perf_counter() - t0
    model = GoalDiffusion(cfg.model)
    t0 = time.perf_counter()
    losses = train_goal_diffusion(
        model, train, args.steps, args.batch_size, cfg.train.lr, seed=0, progress=False
    )
    t_train = time.perf_counter() - t0
    cd_copy = chamfer_distance(heldout.initial_points, heldout.goal_points).numpy()
    by_strength, t_sample, report = {}, 0.0, {}
    runs = [(st, sn) for st in args.strengths for sn in args.snap]
    for strength, snap in runs:
        t0 = time.perf_counter()
        report = evaluate_goals(model, heldout, steps=args.ddim_steps, tau=0.01, strength=strength, snap=snap)
        t_sample = (time.perf_counter() - t0) / len(heldout)
        imagined = report.pop("imagined_clouds")[..., :3]
        cd_im = chamfer_distance(imagined, heldout.goal_points).numpy()
        rng = np.random.default_rng(0)
        boots = [np.mean((cd_im - cd_copy)[rng.integers(0, len(cd_im), len(cd_im))]) for _ in range(2000)]
        by_strength[str(strength) if snap == 0 else f"{strength}_snap{snap}"] = {
            **{k: round(v, 4) for k, v in report["imagined"].items()},
            "chamfer_diff_vs_copy_ci95": [round(float(np.percentile(boots, q)), 4) for q in (2.5, 97.5)],
            "per_task": _per_task(imagined, heldout),
        }
    result = {
        "benchmark": "goal_diffusion",
        "train_scenes": len(train),
        "heldout_scenes": len(heldout),
        "num_points": args.points,
        "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "train_steps": args.steps,
        "batch_size": args.batch_size,
        "ddim_steps": args.ddim_steps,
        "prediction": cfg.model.prediction,
        "loss_first_last": [round(float(np.mean(losses[:20])), 4), round(float(np.mean(losses[-50:])), 4)],
        "heldout_imagined_by_strength": by_strength,
        "heldout_copy_initial": {
            **{k: round(v, 4) for k, v in report["copy_initial"].items()},
            "per_task": _per_task(heldout.initial_points, heldout),
        },
        "seconds": {
            "data": round(t_data, 1),
            "train": round(t_train, 1),
            "sample_per_scene": round(t_sample, 2),
        },
        "load_avg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

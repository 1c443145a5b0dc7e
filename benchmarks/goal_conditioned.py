"""Benchmark: goal-conditioned VLA on a goal-specified task, held-out seeds, three conditions:

    (a) language only            a tiny VLA trained on the expert demos (images, state, instruction)
    (b) language + true goal     the same data, steps and seed, plus goal point-cloud tokens (the env's
                                 goal cloud `goal/points` + `goal/colors`, model.goal_points)
    (c) language + imagined goal (b)'s checkpoint fed the goal a displacement goal-diffusion model imagines
                                 from the initial cloud and the instruction (policy goal_imagination)

Success rates with 95% Wilson intervals (vla eval), plus Chamfer / F-score@1cm of the imagined goals on
held-out scenes next to the copy-the-initial-scene baseline. Everything goes through the real commands
(`vla collect`, `vla train`, `vla eval`) in this process, one torch thread. Prints ONE JSON line.

    python benchmarks/goal_conditioned.py                       # defaults below, ~25 min on an idle CPU
    python benchmarks/goal_conditioned.py --reuse               # keep stores/checkpoints already in --out
    python benchmarks/goal_conditioned.py --model model=tiny_vla model.lm.hf.hidden_size=128 ...
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from vla.cli import main as cli
from vla.models.checkpoint import CONFIG_FILE, CheckpointManager

N_POINTS = 256
# The observation the whole benchmark uses: one static camera at 128 px (the VLA resizes to its own
# 64 px), depth for the initial cloud of goal imagination, the env's goal cloud at N points.
ENV = ["env.image_size=128", "env.cameras=[static]", "env.depth=true", f"env.goal_points={N_POINTS}"]
CLOUDS = [
    "record_clouds=true",
    f"pointcloud.num_points={N_POINTS}",
    "pointcloud.workspace_max=[0.9,0.5,0.15]",  # the table-top objects, not the arm above them
    "pointcloud.voxel_size=0.003",
]


def _run(args: list[str]) -> float:
    t0 = time.perf_counter()
    code = cli(args)
    if code != 0:
        raise SystemExit(f"command failed ({code}): vla {' '.join(args)}")
    return time.perf_counter() - t0


def _collect(out: Path, task: str, split: str, episodes: int, reuse: bool) -> float:
    if reuse and (out / "zarr.json").is_file():
        return 0.0
    args = ["collect", f"task.name={task}", f"task.split={split}", f"episodes={episodes}", *ENV, *CLOUDS]
    return _run([*args, f"out={out}", "overwrite=true"])


def _train(store: Path, out: Path, steps: int, goal: bool, model: list[str], reuse: bool) -> float:
    if reuse and CheckpointManager.of_run(out).latest() is not None:
        return 0.0
    goal_args = ["model.goal_points.num_groups=16", "model.goal_points.in_features=6"] if goal else []
    args = ["train", str(store), f"out={out}", "cameras=[static]", "threads=1", f"trainer.steps={steps}"]
    args += [f"trainer.save_every={steps}", "trainer.log_every=100", "trainer.progress=false"]
    args += [*model, *goal_args]
    return _run(args)


def _eval(out: Path, task: str, episodes: int, policy: list[str], split: str = "heldout") -> dict:
    args = ["eval", *policy, f"tasks=[{task}]", f"episodes={episodes}", f"split={split}", *ENV]
    args += ["references=[]", "failure_videos=1", "success_videos=1", "progress=false", f"out={out}"]
    wall = _run(args)
    res = json.loads((out / "results.json").read_text())
    m = next(iter(res["per_policy"].values()))["tasks"][task]
    errors = [e["error"] for e in res["episodes"] if e["error"]]
    return {
        "success": f"{m['successes']}/{m['episodes']}",
        "rate": round(m["success_rate"], 3),
        "ci95": [round(m["ci95_low"], 3), round(m["ci95_high"], 3)],
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "latency_p50_ms": round(m["latency_p50_ms"], 1),
        "eval_s": round(wall, 1),
    }


def _goal_model(
    train_store: Path, heldout_store: Path, out: Path, steps: int, radius: float, snap: float, reuse: bool
) -> dict:
    """Train (or reuse) the displacement goal-diffusion model; Chamfer/F-score on held-out scenes."""
    from vla.backbones.config import PointEncoderConfig
    from vla.data.store import EpisodeStore
    from vla.models.goal_diffusion import GoalDiffusion, GoalDiffusionConfig
    from vla.training.goal_diffusion import evaluate_goals, train_goal_diffusion
    from vla.pointcloud.goals import goal_set_from_store
    from vla.pointcloud.metrics import chamfer_distance

    train, pcfg = goal_set_from_store(EpisodeStore.open(train_store))
    heldout, _ = goal_set_from_store(EpisodeStore.open(heldout_store))
    t0 = time.perf_counter()
    if reuse and (out / CONFIG_FILE).is_file():
        model = GoalDiffusion.from_pretrained(out)
    else:
        cfg = GoalDiffusionConfig(
            num_points=N_POINTS, width=64, depth=3, heads=4, prediction="displacement",
            initial_point_tokens=False, points=PointEncoderConfig(num_groups=32, group_size=16, width=64),
            align_radius=radius,
        )  # fmt: skip
        torch.manual_seed(0)
        model = GoalDiffusion(cfg)
        train_goal_diffusion(model, train, steps, batch_size=16, lr=1e-3, seed=0, progress=False)
        model.save_pretrained(out, extra_config={"goals": {"pointcloud": pcfg, "steps": steps}})
    t_train = time.perf_counter() - t0
    report = evaluate_goals(model, heldout, steps=50, tau=0.01, snap=snap)
    imagined = report.pop("imagined_clouds")[..., :3]
    diff = (
        chamfer_distance(imagined, heldout.goal_points).numpy()
        - chamfer_distance(heldout.initial_points, heldout.goal_points).numpy()
    )
    rng = np.random.default_rng(0)
    boots = [float(np.mean(diff[rng.integers(0, len(diff), len(diff))])) for _ in range(2000)]
    return {
        "train_scenes": len(train),
        "heldout_scenes": len(heldout),
        "imagined": {k: round(v, 4) for k, v in report["imagined"].items()},
        "copy_initial": {k: round(v, 4) for k, v in report["copy_initial"].items()},
        "chamfer_diff_vs_copy_ci95": [round(float(np.percentile(boots, q)), 4) for q in (2.5, 97.5)],
        "align_radius": model.cfg.align_radius,
        "snap": snap,
        "train_s": round(t_train, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="outputs/goal_bench")
    ap.add_argument("--task", default="arrange_one")
    ap.add_argument("--episodes", type=int, default=100, help="expert demos (train split)")
    ap.add_argument("--heldout-scenes", type=int, default=30, help="held-out scenes for Chamfer/F-score")
    ap.add_argument("--eval-episodes", type=int, default=20)
    ap.add_argument("--steps", type=int, default=2000, help="VLA training steps, (a) and (b) alike")
    ap.add_argument("--gd-steps", type=int, default=1500, help="goal-diffusion training steps")
    ap.add_argument("--align-radius", type=float, default=0.015, help="goal-diffusion target alignment (m)")
    ap.add_argument("--snap", type=float, default=0.02, help="imagined displacements below this stay (m)")
    ap.add_argument("--model", nargs="*", default=[], help="extra `vla train` overrides for (a) and (b)")
    ap.add_argument("--reuse", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    secs = {
        "collect": _collect(out / "train.zarr", args.task, "train", args.episodes, args.reuse)
        + _collect(out / "heldout.zarr", args.task, "heldout", args.heldout_scenes, args.reuse)
    }
    secs["train_a"] = _train(out / "train.zarr", out / "vla_lang", args.steps, False, args.model, args.reuse)
    secs["train_b"] = _train(out / "train.zarr", out / "vla_goal", args.steps, True, args.model, args.reuse)
    gd = out / "goal_diffusion"
    goals = _goal_model(
        out / "train.zarr", out / "heldout.zarr", gd, args.gd_steps, args.align_radius, args.snap, args.reuse
    )
    a = _eval(out / "eval_lang", args.task, args.eval_episodes, [f"checkpoint={out / 'vla_lang'}"])
    b = _eval(out / "eval_goal", args.task, args.eval_episodes, [f"checkpoint={out / 'vla_goal'}"])
    imagine = [
        "policy=goal_imagination",
        f"+policy_kwargs.checkpoint={out / 'vla_goal'}",
        f"+policy_kwargs.goal_checkpoint={gd}",
        f"+policy_kwargs.snap={args.snap}",
    ]
    c = _eval(out / "eval_imagined", args.task, args.eval_episodes, imagine)
    # do the policies at least fit their training seeds? (the same episodes' layouts they were trained on)
    fit = {
        name: _eval(
            out / f"evaltrain_{run}", args.task, args.eval_episodes, [f"checkpoint={out / run}"], "train"
        )
        for name, run in (("a_language", "vla_lang"), ("b_true_goal", "vla_goal"))
    }
    result = {
        "benchmark": "goal_conditioned",
        "task": args.task,
        "split": "heldout",
        "train_episodes": args.episodes,
        "vla_steps": args.steps,
        "model_overrides": args.model,
        "success": {"a_language": a, "b_true_goal": b, "c_imagined_goal": c},
        "train_split_success": fit,
        "goal_imagination": goals,
        "seconds": {**{k: round(v, 1) for k, v in secs.items()}, "total": round(time.perf_counter() - t0, 1)},
        "load_avg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

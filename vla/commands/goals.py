"""`vla goals generate | train | sample`: goal-scene data, goal-imagination training, imagined goals to PNG.

    vla goals generate generate.tasks=[pick,place,push,stack] generate.episodes=16 generate.out=g.npz
    vla goals train train.data=g.npz train.steps=2000 train.out=outputs/goal_diffusion
    vla goals sample sample.checkpoint=outputs/goal_diffusion sample.data=heldout.npz sample.out=outputs/s

One hydra config (`configs/goal_diffusion.yaml`, schema `GoalsConfig`) holds the point-cloud pipeline
(group `pointcloud`), the model, and one section per subcommand. `train` writes a checkpoint in the
project's format; `sample` writes one PNG per triple (initial / true goal / imagined goal, optionally .ply)
and `metrics.json` (Chamfer and F-score of imagined goals and of the copy-the-initial-cloud baseline).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vla.core.config import ConfigError, compose, register_config, save_resolved, to_dataclass
from vla.core.io import atomic_write_json
from vla.models.goal_diffusion import GoalDiffusion, GoalDiffusionConfig
from vla.pointcloud.goals import GoalSet, generate_goal_scenes
from vla.pointcloud.pipeline import Cloud, PointCloudConfig
from vla.pointcloud.viz import render_clouds_png, write_ply
from vla.training.goal_diffusion import evaluate_goals, train_goal_diffusion

SUBCOMMANDS = ("generate", "train", "sample")


@dataclass
class GoalDataConfig:
    """`vla goals generate`: expert episodes per task, their split, rendering size, output file."""

    tasks: list[str] = field(default_factory=lambda: ["pick", "place", "push", "stack"])
    episodes: int = 16
    split: str = "train"
    image_size: int = 128
    noise: float = 0.0
    keep_failed: bool = False
    out: str = "outputs/goals/train.npz"


@dataclass
class GoalTrainConfig:
    """`vla goals train`: data file, optimisation, output checkpoint directory."""

    data: str = "outputs/goals/train.npz"
    steps: int = 2000
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = torch's default
    out: str = "outputs/goal_diffusion"


@dataclass
class GoalSampleConfig:
    """`vla goals sample`: checkpoint, data file, DDIM steps, how many triples to draw, output directory."""

    checkpoint: str = "outputs/goal_diffusion"
    data: str = "outputs/goals/heldout.npz"
    steps: int = 50
    strength: float = 1.0  # < 1: start from the noised initial cloud (SDEdit) instead of pure noise
    episodes: int = 4  # PNGs for the first `episodes` triples; metrics over all of them
    seed: int = 0
    tau: float = 0.01
    ply: bool = False
    out: str = "outputs/goal_samples"


@register_config("goal_diffusion")
@dataclass
class GoalsConfig:
    pointcloud: PointCloudConfig = field(default_factory=PointCloudConfig)
    model: GoalDiffusionConfig = field(default_factory=GoalDiffusionConfig)
    generate: GoalDataConfig = field(default_factory=GoalDataConfig)
    train: GoalTrainConfig = field(default_factory=GoalTrainConfig)
    sample: GoalSampleConfig = field(default_factory=GoalSampleConfig)


def run_generate(cfg: GoalsConfig) -> int:
    g = cfg.generate
    goals = generate_goal_scenes(
        g.tasks, g.episodes, g.split, cfg.pointcloud, g.image_size, g.noise, g.keep_failed
    )
    path = goals.save(g.out)
    print(f"wrote {len(goals)} goal scenes ({goals.num_points} points each) to {path}")
    return 0


def run_train(cfg: GoalsConfig) -> int:
    import numpy as np
    import torch

    t = cfg.train
    if t.threads > 0:
        torch.set_num_threads(t.threads)
    goals = GoalSet.load(t.data)
    torch.manual_seed(t.seed)
    model = GoalDiffusion(cfg.model)
    losses = train_goal_diffusion(model, goals, t.steps, t.batch_size, t.lr, t.seed)
    extra = {"goals": {"train": dataclasses.asdict(t), "pointcloud": dataclasses.asdict(cfg.pointcloud)}}
    path = model.save_pretrained(t.out, extra_config=extra)
    save_resolved(cfg, path, "goals_config.yaml")
    n = sum(p.numel() for p in model.parameters())
    print(
        f"trained {n / 1e6:.2f}M parameters for {t.steps} steps on {len(goals)} scenes: loss "
        f"{np.mean(losses[:20]):.4f} -> {np.mean(losses[-20:]):.4f}; checkpoint {path}"
    )
    return 0


def run_sample(cfg: GoalsConfig) -> int:
    s = cfg.sample
    model = GoalDiffusion.from_pretrained(s.checkpoint)
    goals = GoalSet.load(s.data)
    report = evaluate_goals(model, goals, steps=s.steps, tau=s.tau, seed=s.seed, strength=s.strength)
    imagined = report.pop("imagined_clouds")
    out = Path(s.out)
    for i in range(min(s.episodes, len(goals))):
        name = f"{i:03d}_{goals.task[i]}_{goals.seed[i]}"
        img = imagined[i]
        cols = (img[:, 3:6] * 255).round().astype("uint8") if img.shape[1] >= 6 else None
        render_clouds_png(
            out / f"{name}.png",
            {
                "initial": Cloud(goals.initial_points[i], goals.initial_colors[i], goals.num_points),
                "true goal": Cloud(goals.goal_points[i], goals.goal_colors[i], goals.num_points),
                "imagined goal": (img[:, :3], cols),
            },
            title=str(goals.instruction[i]),
        )
        if s.ply:
            write_ply(out / f"{name}_imagined.ply", img[:, :3], cols)
            write_ply(out / f"{name}_goal.ply", goals.goal_points[i], goals.goal_colors[i])
    atomic_write_json(out / "metrics.json", report)
    im, base = report["imagined"], report["copy_initial"]
    print(
        f"{len(goals)} scenes: imagined Chamfer {im['chamfer']:.4f} m, F@{s.tau:g} {im['f_score']:.3f}; "
        f"copy-initial Chamfer {base['chamfer']:.4f} m, F {base['f_score']:.3f}; PNGs in {out}"
    )
    return 0


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        print(f"usage: vla goals {{{'|'.join(SUBCOMMANDS)}}} [key=value ...]", file=sys.stderr)
        return 2
    sub, overrides = argv[0], argv[1:]
    try:
        cfg = to_dataclass(compose("goal_diffusion", overrides), GoalsConfig)
        return {"generate": run_generate, "train": run_train, "sample": run_sample}[sub](cfg)
    except ConfigError:
        raise  # a bad override: the CLI's one line and exit 2
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"vla goals {sub}: {e}", file=sys.stderr)
        return 1

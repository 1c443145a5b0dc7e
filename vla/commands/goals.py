"""`vla goals generate | train | sample`: goal-scene data, goal-imagination training, imagined goals to PNG.

    vla goals generate generate.tasks=[pick,place,push,stack] generate.episodes=16 generate.out=g.npz
    vla goals train train.data=g.npz train.steps=2000 train.out=outputs/goal_diffusion
    vla goals sample sample.checkpoint=outputs/goal_diffusion sample.data=heldout.npz sample.out=outputs/s

One hydra config (`configs/goal_diffusion.yaml`, schema `GoalsConfig`) holds the point-cloud pipeline
(group `pointcloud`), the model, and one section per subcommand. `train` writes a checkpoint in the
project's format; `sample` writes one PNG per triple (initial / true goal / imagined goal, optionally .ply)
and `metrics.json` (Chamfer and F-score of imagined goals and of the copy-the-initial-cloud baseline).
Each subcommand checks its arguments before any work (tasks, split, sizes, that its inputs exist) and
raises a bad one as a `ConfigError` (one line, exit code 2); an output of an earlier run (the goal-scene
file, the checkpoint directory, a samples directory that is not empty) is refused unless `overwrite=true`.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sim.tasks import check_split, get_task
from vla.commands.collect import check_pointcloud
from vla.core.config import (
    ConfigError,
    argument_checks,
    check_number,
    check_path_name,
    compose,
    register_config,
    save_resolved,
    to_dataclass,
)
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
    overwrite: bool = False  # replace the output of an earlier run (generate.out, train.out, sample.out)


def _refuse_existing(path: str, key: str, what: str, overwrite: bool) -> None:
    """An output that exists (a file, or a directory that is not empty) is a ConfigError unless
    overwrite=true."""
    if not path:  # "" is the current directory, which is never the output meant
        raise ConfigError(f"{key}: expected a path, got ''", key)
    check_path_name(path, key)
    p = Path(path)
    if overwrite or not p.exists() or (p.is_dir() and not any(p.iterdir())):
        return
    raise ConfigError(
        f"{key}={path} already exists ({what}): pass overwrite=true to replace it, or choose another {key}=",
        key,
        "output-exists",
    )


def _check_npz(path: str, key: str) -> None:
    """A goal-scene file is a .npz archive (numpy's own error for a text file speaks of pickles)."""
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"{key}={path} is not a goal-scene file (.npz of `vla goals generate`)", key)


def _at_least(section: object, name: str, key: str, low: float, high: float | None = None) -> None:
    check_number(getattr(section, key), f"{name}.{key}", low, high)  # NaN is refused too


def check_goal_model(m: GoalDiffusionConfig, key: str = "model") -> None:
    """The goal-diffusion model's sizes before it is built: a ConfigError naming the key (the model's own
    check names every field at once, and a negative width is a torch error)."""
    for name in ("num_points", "width", "depth", "heads", "text_max_tokens"):
        check_number(getattr(m, name), f"{key}.{name}", 1)
    check_number(m.timesteps, f"{key}.timesteps", 2)
    check_number(m.text_layers, f"{key}.text_layers", 0)
    for name in ("num_groups", "group_size", "width"):
        check_number(getattr(m.points, name), f"{key}.points.{name}", 1)
    check_number(m.points.in_features, f"{key}.points.in_features", 3)
    check_number(m.scale, f"{key}.scale", 0, 10, low_open=True)  # metres per normalised unit
    check_number(m.align_radius, f"{key}.align_radius", 0, 10)  # metres
    center = list(m.center)
    if len(center) != 3 or not all(isinstance(c, (int, float)) and math.isfinite(c) for c in center):
        raise ConfigError(f"{key}.center: expected 3 finite numbers (metres), got {center}", f"{key}.center")
    check_path_name(m.tokenizer, f"{key}.tokenizer")


def check_config(sub: str, cfg: GoalsConfig) -> None:
    """The arguments of `vla goals SUB`, before anything runs (ConfigError: one line, exit 2)."""
    check_pointcloud(cfg.pointcloud)
    if sub == "generate":
        g = cfg.generate
        if not g.tasks:
            raise ConfigError("generate.tasks: expected at least one task", "generate.tasks")
        with argument_checks("generate.tasks", "unknown-choice"):
            for t in g.tasks:
                get_task(t)
        with argument_checks("generate.split", "unknown-choice"):
            check_split(g.split)
        _at_least(g, "generate", "episodes", 1)
        _at_least(g, "generate", "image_size", 16)
        _at_least(g, "generate", "noise", 0, 1)  # std in action units (the actions span [-1, 1])
        _refuse_existing(g.out, "generate.out", "a goal-scene file", cfg.overwrite)
        if Path(g.out).is_dir():
            raise ConfigError(f"generate.out={g.out} is a directory; expected a .npz file", "generate.out")
    elif sub == "train":
        t = cfg.train
        check_goal_model(cfg.model)
        check_path_name(t.data, "train.data")
        if not Path(t.data).is_file():
            raise ConfigError(f"goal-scene file not found: {t.data}", "train.data", "no-such-path")
        _check_npz(t.data, "train.data")
        for key in ("steps", "batch_size"):
            _at_least(t, "train", key, 1)
        check_number(t.lr, "train.lr", 0, low_open=True)
        _at_least(t, "train", "threads", 0)
        _at_least(t, "train", "seed", 0)
        _refuse_existing(t.out, "train.out", "a checkpoint", cfg.overwrite)
    else:
        s = cfg.sample
        check_path_name(s.checkpoint, "sample.checkpoint")
        check_path_name(s.data, "sample.data")
        if not Path(s.checkpoint).is_dir():
            raise ConfigError(
                f"checkpoint directory not found: {s.checkpoint}", "sample.checkpoint", "no-such-path"
            )
        if not Path(s.data).is_file():
            raise ConfigError(f"goal-scene file not found: {s.data}", "sample.data", "no-such-path")
        _check_npz(s.data, "sample.data")
        _at_least(s, "sample", "steps", 1)
        _at_least(s, "sample", "episodes", 0)
        _at_least(s, "sample", "seed", 0)
        check_number(s.tau, "sample.tau", 0, low_open=True)
        if not 0 < s.strength <= 1:
            raise ConfigError(f"sample.strength must be in (0, 1], got {s.strength}", "sample.strength")
        _refuse_existing(s.out, "sample.out", "samples of an earlier run", cfg.overwrite)


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
    if cfg.overwrite and out.is_dir():  # an earlier run's files (only the names this command writes)
        for old in [*out.glob("[0-9][0-9][0-9]_*.png"), *out.glob("[0-9][0-9][0-9]_*.ply")]:
            old.unlink()
        (out / "metrics.json").unlink(missing_ok=True)
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
    usage = f"(usage: vla goals {{{'|'.join(SUBCOMMANDS)}}} [key=value ...])"
    if not argv or "=" in argv[0]:
        raise ConfigError(f"missing subcommand {usage}", "subcommand", "bad-value")
    if argv[0] not in SUBCOMMANDS:
        raise ConfigError(f"unknown subcommand {argv[0]!r} {usage}", "subcommand", "unknown-choice")
    sub, overrides = argv[0], argv[1:]
    cfg = to_dataclass(compose("goal_diffusion", overrides), GoalsConfig)
    check_config(sub, cfg)
    try:
        return {"generate": run_generate, "train": run_train, "sample": run_sample}[sub](cfg)
    except ConfigError:
        raise
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"vla goals {sub}: {e}", file=sys.stderr)
        return 1

"""`vla demo`: the main job, end to end: collect expert demonstrations, train the VLA, evaluate it.

Three stages, each the real command with overrides (so the demo is exactly what a user would type):

    1. `vla collect`  task=<t> episodes=<episodes> -> <out>/data/<t>.zarr           (scripted experts)
    2. `vla train`    first store + the others as a mixture -> <out>/train            (tiny VLA, CPU)
    3. `vla eval`     checkpoint=<out>/train split=heldout -> <out>/eval              (+ expert, random)

and then a summary: `<out>/summary.json` (per-stage wall time, success per task with 95% intervals for
the VLA and the two reference policies), `<out>/loss.png` (training curves) and a table on the console.
The eval stage writes `report.md`, a success-rate bar chart and failure/success videos of the VLA.

A killed demo resumes, and a finished one re-runs in place: `<out>` belongs to the demo, so each stage
says explicitly how it reuses its own outputs (the stages refuse to clobber another run's otherwise): a
complete store is kept (an incomplete one, or with `aux=true` one without aux/scene, is collected again,
`overwrite=true`), training continues from its latest checkpoint (`trainer.resume=true`), evaluation runs
again into `<out>/eval` (`overwrite=true`).
A bad argument (an unknown task, a count below 1) is one `ConfigError` line and exit code 2.

    vla demo                        # pick_colour, 200 demos, ~12 min of training, 50 held-out seeds
    vla demo preset=full            # all four tasks, one multi-task model (configs/preset/full.yaml)
    vla demo episodes=20 steps=200 eval_episodes=5 out=outputs/demo_quick
    vla demo 'train=["model=tiny_vla","trainer.lr=3e-4"]'   # any `vla train` override, quoted
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sim
from sim.camera import DEFAULT_CAMERAS
from vla.commands import collect
from vla.commands import eval as evaluate
from vla.commands import train as train_cli
from vla.core.config import (
    ConfigError,
    argument_checks,
    check_path_name,
    compose,
    register_config,
    save_resolved,
    to_dataclass,
)
from vla.core.io import atomic_write_json, read_json
from vla.core.policy import get_policy_class
from vla.core.types import AUX_KEY, colour_key
from vla.data.store import EpisodeStore
from vla.eval.report import ci_cell, language_cells, success_cell


@register_config("demo")
@dataclasses.dataclass
class DemoConfig:
    """Schema of configs/demo.yaml (presets in configs/preset/)."""

    preset: str = "pick"  # the name of the preset this config came from (for the summary)
    tasks: list[str] = dataclasses.field(default_factory=lambda: ["pick_colour"])
    episodes: int = 200  # expert demonstrations per task
    num_envs: int = 2  # env processes for collection and evaluation
    image_size: int = 64
    cameras: list[str] = dataclasses.field(default_factory=lambda: ["static", "wrist"])
    steps: int = 3000  # training steps (`vla train trainer.steps=`)
    train: list[str] = dataclasses.field(default_factory=list)  # extra `vla train` overrides, quoted
    # true: the demonstrations also record aux/scene (where the named object and goal are; `vla collect
    # aux=true`), the target of `vla train aux_weight=...` in `train`
    aux: bool = False
    # true: the demonstrations also record which palette colour each pixel shows (`vla collect
    # env.colour_masks=true`, colours/<cam>), what `vla train colour_swap=...` in `train` recolours
    colour_masks: bool = False
    eval_episodes: int = 50  # held-out seeds per task (and per reference policy)
    references: list[str] = dataclasses.field(default_factory=lambda: ["expert", "random"])
    language_check: bool = True  # the VLA once more on every seed with a swapped instruction (vla eval)
    language_episodes: int = 0  # the language check's seeds per task (the first ones); 0: eval_episodes
    val_points: int = 12  # validation passes during training (the loss plot's validation curve)
    out: str = "outputs/demo"


def _check(cfg: DemoConfig) -> None:
    """The demo's own arguments; a problem is a ConfigError (one line, exit 2) naming the key."""
    unknown = [t for t in cfg.tasks if t not in sim.list_tasks()]
    if unknown or not cfg.tasks:
        raise ConfigError(f"tasks={cfg.tasks}: expected some of {sim.list_tasks()}", key="tasks")
    for key in ("episodes", "num_envs", "eval_episodes", "image_size", "steps"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key} must be >= 1, got {getattr(cfg, key)}", key=key)
    if cfg.language_episodes < 0:
        raise ConfigError(f"language_episodes must be >= 0, got {cfg.language_episodes}", "language_episodes")
    if cfg.val_points < 0:
        raise ConfigError(
            f"val_points must be >= 0 (0: validate at the end only), got {cfg.val_points}", key="val_points"
        )
    cameras = list(DEFAULT_CAMERAS)
    if not cfg.cameras or any(c not in cameras for c in cfg.cameras):
        raise ConfigError(f"cameras={list(cfg.cameras)}: expected some of {cameras}", key="cameras")
    with argument_checks("references", "unknown-choice"):
        for name in cfg.references:
            get_policy_class(name)
    if not cfg.out:  # "" is the current directory, never the output meant
        raise ConfigError("out: expected a directory path, got ''", "out")
    check_path_name(cfg.out, "out")
    bad = [a for a in cfg.train if "=" not in str(a)]
    if bad:
        raise ConfigError(f"train: expected vla train overrides key=value, got {bad}", key="train")
    train_cfg = train_cli.load_config(train_overrides(cfg))  # the training stage's arguments, now
    with argument_checks("trainer"):
        train_cli.Trainer(train_cfg.trainer)


def _listing(items: Sequence[str]) -> str:
    return "[" + ",".join(items) + "]"


def _env_overrides(cfg: DemoConfig) -> list[str]:
    return [f"env.image_size={cfg.image_size}", f"env.cameras={_listing(cfg.cameras)}", "env.depth=false"]


def store_path(cfg: DemoConfig, task: str) -> Path:
    return Path(cfg.out) / "data" / f"{task}.zarr"


def _collect(cfg: DemoConfig, task: str) -> dict[str, Any]:
    """Stage 1 for one task; a store that already holds `episodes` episodes is kept."""
    path = store_path(cfg, task)
    if path.exists():
        store = EpisodeStore.open(path)
        have = store.num_episodes
        masks = colour_key(cfg.cameras[0]) in store.features or not cfg.colour_masks
        if have >= cfg.episodes and (AUX_KEY in store.features or not cfg.aux) and masks:
            print(f"[demo] collect {task}: {path} already holds {have} episodes, kept")
            return {"task": task, "episodes": have, "kept": True}
    argv = [
        f"task={task}",
        f"episodes={cfg.episodes}",
        f"num_envs={cfg.num_envs}",
        f"out={path}",
        "overwrite=true",
        *(["aux=true"] if cfg.aux else []),
        *(["env.colour_masks=true"] if cfg.colour_masks else []),
        *_env_overrides(cfg),
    ]
    code = collect.main(argv)
    if code:
        raise RuntimeError(f"demo: vla collect {' '.join(argv)} failed with exit code {code}")
    return {"task": task, "episodes": EpisodeStore.open(path).num_episodes, "kept": False}


def train_overrides(cfg: DemoConfig) -> list[str]:
    """The `vla train` command line of stage 2 (first task's store + the others as a mixture)."""
    stores = [store_path(cfg, t) for t in cfg.tasks]
    argv = [f"data.path={stores[0]}", f"out={Path(cfg.out) / 'train'}", f"cameras={_listing(cfg.cameras)}"]
    if len(stores) > 1:
        argv.append("mixture=" + _listing([f"{{path: {p}, weight: 1.0}}" for p in stores[1:]]))
    # One torch thread per process: `vla train` runs one data-parallel rank per core (procs=0, its
    # default), which is 2x one process on 2 cores, where two intra-op threads gain ~10% and thrash as
    # soon as anything else runs (docs/training.md, "Training throughput")
    val = [f"trainer.val_every={max(cfg.steps // cfg.val_points, 1)}"] if cfg.val_points > 0 else []
    return [*argv, f"trainer.steps={cfg.steps}", *val, "trainer.resume=true", "threads=1", *cfg.train]


def eval_overrides(cfg: DemoConfig) -> list[str]:
    return [
        f"checkpoint={Path(cfg.out) / 'train'}",
        f"tasks={_listing(cfg.tasks)}",
        f"episodes={cfg.eval_episodes}",
        "split=heldout",
        f"num_envs={cfg.num_envs}",
        f"references={_listing(cfg.references)}",
        f"language_check={str(cfg.language_check).lower()}",
        f"language_episodes={cfg.language_episodes}",
        f"out={Path(cfg.out) / 'eval'}",
        "overwrite=true",  # the demo's own evaluation directory: a re-run replaces its last results
        "threads=1",  # the policy shares the CPU with the env processes
        *_env_overrides(cfg),
    ]


def plot_losses(log_path: Path, out_png: Path) -> Path | None:
    """Training loss and action-token accuracy against step, from the trainer's log.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not log_path.exists():
        return None
    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    train = [r for r in rows if r.get("split") == "train" and "loss" in r]
    if not train:
        return None
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    steps = [r["step"] for r in train]
    ax[0].plot(steps, [r["loss"] for r in train], label="train")
    val_loss = [r for r in rows if r.get("split") == "val" and "loss" in r]
    if val_loss:
        ax[0].plot([r["step"] for r in val_loss], [r["loss"] for r in val_loss], "o-", label="val")
    ax[0].set(xlabel="step", ylabel="loss", yscale="log", title="loss")
    ax[0].legend()
    if any("action_acc" in r for r in train):  # token head: teacher-forced action-token accuracy
        ax[1].plot(steps, [r.get("action_acc", float("nan")) for r in train], label="train")
        val = [r for r in rows if r.get("split") == "val" and "action_acc" in r]
        if val:
            ax[1].plot([r["step"] for r in val], [r["action_acc"] for r in val], "o-", label="val")
        ax[1].set(xlabel="step", ylabel="action-token accuracy", ylim=(0, 1), title="accuracy")
    else:  # continuous head: validation L1 of the raw actions
        val = [r for r in rows if r.get("split") == "val" and "action_l1" in r]
        ax[1].plot([r["step"] for r in val], [r["action_l1"] for r in val], "o-", label="val")
        ax[1].set(xlabel="step", ylabel="action L1 (raw units)", yscale="log", title="validation error")
    ax[1].legend()
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_png.with_name(out_png.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out_png)
    return out_png


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """Collect -> train -> evaluate; returns the summary also written to `<out>/summary.json`."""
    _check(cfg)
    out = Path(cfg.out)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    collected = [_collect(cfg, t) for t in cfg.tasks]
    times["collect_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    code = train_cli.main(train_overrides(cfg))
    if code:
        raise RuntimeError(f"demo: vla train {' '.join(train_overrides(cfg))} failed with exit code {code}")
    times["train_s"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    evaluate.main(eval_overrides(cfg))
    times["eval_s"] = time.perf_counter() - t2
    times["total_s"] = time.perf_counter() - t0

    results = read_json(out / "eval" / "results.json", what="evaluation results")
    per_policy = {
        name: {
            task: {k: m[k] for k in ("successes", "episodes", "success_rate", "ci95_low", "ci95_high")}
            for task, m in block["tasks"].items()
        }
        for name, block in results["per_policy"].items()
    }
    summary = {
        "preset": cfg.preset,
        "tasks": list(cfg.tasks),
        "collected": collected,
        "train_command": "vla train " + " ".join(train_overrides(cfg)),
        "eval_command": "vla eval " + " ".join(eval_overrides(cfg)),
        "success": per_policy,
        **({"language": results["language"]} if "language" in results else {}),
        "wall_time": times,
        "loss_plot": str(plot_losses(out / "train" / "log.jsonl", out / "loss.png")),
        "report": str(out / "eval" / "report.md"),
    }
    atomic_write_json(out / "summary.json", summary)
    return summary


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"vla demo ({summary['preset']}): success on held-out seeds")
    for col in ("policy", "task", "success", "95% CI"):
        table.add_column(col)
    for name, tasks in summary["success"].items():
        for task, m in tasks.items():
            table.add_row("VLA" if name == "vla" else name, task, success_cell(m), ci_cell(m))
    console = Console()
    console.print(table)
    for task, m in summary.get("language", {}).items():
        new, old = language_cells(m)
        console.print(f"language check, {task}: follows the swapped instruction {new}, the original {old}")
    t = summary["wall_time"]
    console.print(
        f"wall time {t['total_s'] / 60:.1f} min (collect {t['collect_s']:.0f} s, train {t['train_s']:.0f} s, "
        f"eval {t['eval_s']:.0f} s); report {summary['report']}, curves {summary['loss_plot']}"
    )


def main(argv: Sequence[str]) -> int:
    cfg = to_dataclass(compose("demo", list(argv)), DemoConfig)
    _check(cfg)  # before anything is written
    save_resolved(cfg, cfg.out)
    summary = run_demo(cfg)
    _print_summary(summary)
    return 0

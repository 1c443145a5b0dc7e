"""`vla demo`: the first end-to-end run: scripted experts act in every task, each episode is filmed.

For each task in the config, the task's scripted expert runs `episodes` seeds of the chosen split
through the shared rollout loop with a `VideoRecorder`; videos go to `<out>/<task>/seed<seed>.<format>`,
and `<out>/summary.json` holds every episode result plus the success rate per task. Later issues grow
this command into collect -> train -> evaluate.

    vla demo                                  # 2 episodes of pick, place, push, stack -> outputs/demo/
    vla demo tasks=[pick,stack] episodes=3 image_size=224 video_format=gif
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

from vla.config import compose, register_config, save_resolved, to_dataclass
from vla.utils.io import atomic_write_json


@register_config("demo")
@dataclasses.dataclass
class DemoConfig:
    """Schema of configs/demo.yaml."""

    tasks: list[str] = dataclasses.field(default_factory=lambda: ["pick", "place", "push", "stack"])
    episodes: int = 2
    split: str = "train"
    image_size: int = 128
    camera: str = "static"
    video_format: str = "mp4"  # mp4 | gif
    fps: int = 10
    noise: float = 0.0
    renderer: str = "tiny"
    out: str = "outputs/demo"


def _check(cfg: DemoConfig) -> None:
    import sim

    for t in cfg.tasks:
        if t not in sim.list_tasks():
            raise ValueError(f"demo: unknown task {t!r} in tasks; expected some of {sim.list_tasks()}")
    if cfg.episodes < 1:
        raise ValueError(f"demo: episodes must be >= 1, got {cfg.episodes}")
    if cfg.video_format not in ("mp4", "gif"):
        raise ValueError(f"demo: video_format must be mp4 or gif, got {cfg.video_format!r}")


def run_demo(cfg: DemoConfig) -> dict:
    """Run the demo; returns the summary dict that is also written to `<out>/summary.json`."""
    import gymnasium as gym
    from tqdm import tqdm

    import sim
    from sim.experts import make_expert
    from vla.eval.rollout import run_episode, summarize
    from vla.eval.video import VideoRecorder

    _check(cfg)
    out = Path(cfg.out)
    results = []
    t0 = time.perf_counter()
    total = len(cfg.tasks) * cfg.episodes
    with tqdm(total=total, desc="demo", unit="ep") as bar:
        for task in cfg.tasks:
            env = gym.make(
                sim.ENV_ID,
                task=task,
                split=cfg.split,
                cameras=(cfg.camera,),
                image_size=cfg.image_size,
                depth=False,
                renderer=cfg.renderer,
            )
            expert = make_expert(task, noise=cfg.noise)
            try:
                for seed in sim.task_seeds(task, cfg.split, cfg.episodes):
                    video = VideoRecorder(
                        out / task / f"seed{seed}.{cfg.video_format}", camera=cfg.camera, fps=cfg.fps
                    )
                    res = run_episode(env, expert, seed, observers=[video])
                    results.append(res)
                    bar.set_postfix(task=task, success=res.success)
                    bar.update(1)
            finally:
                env.close()
    summary = {
        "per_task": summarize(results),
        "episodes": [r.to_dict() for r in results],
        "wall_time_s": time.perf_counter() - t0,
        "videos": str(out),
    }
    atomic_write_json(out / "summary.json", summary)
    return summary


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="vla demo: scripted experts")
    for col in ("task", "episodes", "success", "mean length", "errors"):
        table.add_column(col)
    for task, s in summary["per_task"].items():
        rate, length = f"{100 * s['success_rate']:.0f}%", f"{s['mean_length']:.1f}"
        table.add_row(task, str(s["episodes"]), rate, length, str(s["errors"]))
    console = Console()
    console.print(table)
    console.print(f"videos and summary.json in {summary['videos']} ({summary['wall_time_s']:.1f} s)")


def main(argv: Sequence[str]) -> int:
    cfg = to_dataclass(compose("demo", list(argv)), DemoConfig)
    save_resolved(cfg, cfg.out)
    summary = run_demo(cfg)
    _print_summary(summary)
    return 0 if all(s["errors"] == 0 for s in summary["per_task"].values()) else 1

"""`vla eval`: closed-loop evaluation of a policy on a task set, with reference policies beside it.

For each policy (the one under test, then the references, by default the scripted expert as the upper
line and a random policy as the lower one) and each task, the same fixed list of seeds of the chosen split
(`sim.tasks.task_seeds`) runs through the one rollout loop (`vla.core.rollout`), in one env or in an
AsyncVectorEnv of `num_envs` processes. Per task: success rate with a 95% Wilson interval, mean episode
length, errors, inference latency p50/p95 and control rate. A few failure and success videos of the policy
under test, `results.json`, `report.md` and `success_rate.png` go to `out`. An exception inside one
episode is recorded for that episode and the evaluation goes on.

Videos are cheap: during the rollouts an observer only logs each episode's actions, and the quota picks
the episodes to keep as they end. After a task's rollouts each kept episode is replayed in a fresh
in-process env (same task, split and env settings, but rendering only `video_camera` at `video_size`
pixels, no depth), which reproduces it exactly (the env is deterministic per seed), and filmed with the
instruction, the step and the outcome written on the frames. `video_size=0` films the policy's own input
camera from the observations instead (no replay, no captions).

Outputs never clobber: without `out=` each run writes to its own directory,
`outputs/eval/<tasks>-<policy or checkpoint name>-<YYYYmmdd-HHMMSS>`; an `out=` that already holds another
run's results (results.json, report.md or videos/) is refused unless `overwrite=true`, which deletes
them first, so an old run's videos never sit beside a new report. That refusal and every check of the
arguments (tasks, split, video settings, the checkpoint and its fit to the env, policy names) come before
anything is written, as one `ConfigError` line and exit code 2 from the CLI.

    vla eval policy=expert tasks=[pick,stack] episodes=20 split=heldout num_envs=2
    vla eval checkpoint=outputs/train/pick out=outputs/eval/pick overwrite=true
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import sim
from sim.camera import DEFAULT_CAMERAS
from sim.config import EnvConfig, check_env_resources, env_kwargs
from sim.tasks import check_split, get_task, task_seeds
from sim.vector import make_vector_env
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
from vla.core.policy import get_policy_class
from vla.eval.language import language_check
from vla.eval.metrics import TimedPolicy, latency_summary, task_metrics
from vla.eval.report import summary_lines, write_report
from vla.core.rollout import EpisodeResult, run_rollouts
from vla.core.types import CONTROL_HZ, image_key
from vla.data.video import write_video
from vla.eval.video import VideoRecorder, caption_episode, replay_episode
from vla.models.checkpoint import VLA_TYPE, Checkpoint
from vla.pointcloud.model_inputs import check_env_provides_clouds
from policies.vla import check_env_compatible


@register_config("eval")
@dataclass
class EvalConfig:
    env: EnvConfig = field(default_factory=EnvConfig)  # group `env`: cameras, image_size, renderer ...
    policy: str = "expert"  # a name in the policy registry (vla.core.policy.POLICIES)
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None  # a VLA checkpoint or training run dir: selects policy "vla" (policies.vla)
    tasks: list[str] = field(default_factory=lambda: ["pick"])
    split: str = "heldout"
    episodes: int = 20  # per task; seeds are the split's first `episodes` seeds
    num_envs: int = 1
    references: list[str] = field(default_factory=lambda: ["expert", "random"])
    reference_episodes: int | None = None  # default: same as `episodes`
    failure_videos: int = 3
    success_videos: int = 2
    video_camera: str | None = None  # camera filmed for videos; None: the first of env.cameras (else static)
    # Frame size (px) of the kept videos: each is replayed with `video_camera` rendered at this size, with
    # the instruction, step and outcome written on it. 0: film the policy's input camera, no replay/text.
    video_size: int = 256
    max_episode_steps: int | None = None
    # Also run the main policy once more on each seed with the instruction swapped for one naming another
    # object or goal of the same scene (vla.eval.language): how often it follows the new words, how often
    # it still does what the old ones said.
    language_check: bool = False
    language_episodes: int = 0  # seeds per task of the language check (the first ones); 0: all `episodes`
    out: str | None = None  # None: outputs/eval/<tasks>-<policy or checkpoint name>-<timestamp>, per run
    overwrite: bool = False  # write into an `out` holding another run's results (deleted first)
    progress: bool = True
    threads: int = 0  # torch CPU threads for the policy; 0 keeps torch's default (1: best beside env workers)


def policy_factory(name: str, kwargs: Mapping[str, Any]) -> Callable[[str], Any]:
    """task -> a fresh Policy from the registry; `task` is passed to factories that take it."""
    cls = get_policy_class(name)
    takes_task = "task" in inspect.signature(cls).parameters

    def make(task: str) -> Any:
        kw = dict(kwargs)
        if takes_task:
            kw.setdefault("task", task)
        return cls(**kw)

    return make


@dataclass(frozen=True)
class _KeptEpisode:
    """An episode chosen for a video: its result, "success"/"failure", and the actions it executed."""

    result: EpisodeResult
    kind: str
    actions: tuple[np.ndarray, ...]


class _VideoQuota:
    """How many failure/success videos are still wanted (shared by the episodes of one policy); the
    episodes kept for replay (`kept`) and the video paths written (`written`)."""

    def __init__(self, failures: int, successes: int):
        self.left = {"failure": failures, "success": successes}
        self.written: list[str] = []
        self.kept: list[_KeptEpisode] = []

    def take(self, kind: str) -> bool:
        if self.left[kind] <= 0:
            return False
        self.left[kind] -= 1
        return True


class _KeepSomeVideos(VideoRecorder):
    """Records every episode, writes it only while the quota for its outcome lasts."""

    def __init__(self, out_dir: Path, quota: _VideoQuota, camera: str, fps: int = 10):
        super().__init__(out_dir / "unused.mp4", camera=camera, fps=fps)
        self.out_dir, self.quota = out_dir, quota

    def on_episode_end(self, result: EpisodeResult) -> None:
        kind = "success" if result.success else "failure"
        if self.frames and self.quota.take(kind):
            self.path = self.out_dir / f"{result.task}_{kind}_seed{result.seed}.mp4"
            super().on_episode_end(result)
            self.quota.written.append(str(self.path))
        self.frames = []


class _KeepSomeActions:
    """Observer: logs an episode's executed actions (cheap); at its end the quota decides whether the
    episode is kept, to be replayed and filmed after the task's rollouts (`_write_replays`)."""

    def __init__(self, quota: _VideoQuota):
        self.quota = quota
        self.actions: list[np.ndarray] = []
        self.started = False

    def on_episode_start(self, obs: Mapping[str, Any], info: Mapping[str, Any]) -> None:
        self.actions, self.started = [], True

    def on_step(self, obs, action, reward, terminated, truncated, info) -> None:
        self.actions.append(np.array(action, dtype=np.float32))  # a copy

    def on_episode_end(self, result: EpisodeResult) -> None:
        kind = "success" if result.success else "failure"
        if self.started and self.quota.take(kind):
            self.quota.kept.append(_KeptEpisode(result, kind, tuple(self.actions)))
        self.actions, self.started = [], False


def _video_camera(cfg: EvalConfig) -> str:
    """The camera filmed: `video_camera`, else the first of env.cameras, else (state-only env) static."""
    return cfg.video_camera or (cfg.env.cameras[0] if cfg.env.cameras else "static")


def _write_replays(
    kept: Sequence[_KeptEpisode], env_kw: Mapping[str, Any], camera: str, size: int, out: Path
) -> list[str]:
    """Replay each kept episode in one fresh env like `env_kw` but rendering only `camera` at `size` px
    (goal clouds from the same cameras as before, so observations and physics match), write its captioned
    video `<task>_<kind>_seed<seed>.mp4`, and return the paths. A replay whose success or length differs
    from the original still gets its video, with one warning line."""
    if not kept:
        return []
    goal_cameras = env_kw.get("goal_cameras") or tuple(env_kw["cameras"]) or ("static",)
    kw = {**env_kw, "cameras": (camera,), "image_size": size, "depth": False, "segmentation": False}
    env = gym.make(sim.ENV_ID, **{**kw, "goal_cameras": goal_cameras})
    paths = []
    try:
        for k in kept:
            r = k.result
            rep = replay_episode(env, r.seed, k.actions, image_key(camera))
            if (rep.success, rep.length) != (r.success, r.length):
                print(
                    f"[eval] warning: the replay of {r.task} seed {r.seed} diverged (success {r.success} -> "
                    f"{rep.success}, length {r.length} -> {rep.length}); its video shows the replay"
                )
            outcome = k.kind if r.error is None else f"{k.kind} (error)"
            frames = caption_episode(rep.frames, r.instruction, outcome, r.success, hold=CONTROL_HZ)
            path = out / f"{r.task}_{k.kind}_seed{r.seed}.mp4"
            paths.append(str(write_video(path, frames, fps=CONTROL_HZ)))
    finally:
        env.close()
    return paths


def _task_env_kwargs(cfg: EvalConfig, task: str) -> dict[str, Any]:
    """The env of `task` on the evaluated split, with the run's env settings and horizon override."""
    return env_kwargs(cfg.env, {"name": task, "split": cfg.split, "max_episode_steps": cfg.max_episode_steps})


def run_policy(
    make: Callable[[str], Any],
    tasks: Sequence[str],
    cfg: EvalConfig,
    episodes: int,
    videos: Callable[[], _VideoQuota] | None,
) -> tuple[dict[str, dict[str, Any]], list[EpisodeResult], list[str]]:
    """Evaluate one policy on every task; returns per-task metrics, all episode results, video paths.

    `videos()` makes a fresh quota per task (so every task gets its failure and success videos)."""
    per_task, all_results, written = {}, [], []
    out = Path(cfg.out) / "videos"
    for task in tasks:
        quota = videos() if videos is not None else None
        kw = _task_env_kwargs(cfg, task)
        seeds = task_seeds(task, cfg.split, episodes)
        latencies: list[float] = []

        def observers(seed: int, quota: _VideoQuota | None = quota) -> list:
            if quota is None:
                return []
            if cfg.video_size > 0:
                return [_KeepSomeActions(quota)]
            return [_KeepSomeVideos(out, quota, _video_camera(cfg))]

        env = make_vector_env(cfg.num_envs, **kw) if cfg.num_envs > 1 else gym.make(sim.ENV_ID, **kw)
        try:
            results = run_rollouts(
                env,
                lambda i, t=task, lat=latencies: TimedPolicy(make(t), lat),  # one per (sub-)env
                seeds,
                observers,
                progress=task if cfg.progress else None,
            )
        finally:
            env.close()
        per_task[task] = {**task_metrics(results), **latency_summary(latencies)}
        all_results += results
        if quota is not None and cfg.video_size > 0:
            written += _write_replays(quota.kept, kw, _video_camera(cfg), cfg.video_size, out)
        written += quota.written if quota is not None else []
    return per_task, all_results, written


def _with_checkpoint(cfg: EvalConfig) -> EvalConfig:
    """`checkpoint=` selects the "vla" policy; its cameras, action space and point clouds must match the
    env (checked before the first episode)."""
    ck = Checkpoint.open(cfg.checkpoint, model_type=VLA_TYPE)  # a run dir resolves to its latest
    check_env_compatible(ck, list(cfg.env.cameras), cfg.env.action_space)
    processor = ck.section("vla").get("processor") or {}
    check_env_provides_clouds(processor, dataclasses.asdict(cfg.env), list(cfg.tasks))  # goal/scene clouds
    kwargs = {**cfg.policy_kwargs, "checkpoint": str(ck.path)}
    return dataclasses.replace(cfg, policy="vla", policy_kwargs=kwargs)


def check_config(cfg: EvalConfig) -> EvalConfig:
    """Every check of the arguments, before anything runs or is written; a problem is a ConfigError (one
    line, exit 2) naming the key. Returns `cfg` with `checkpoint=` resolved to policy "vla"."""
    with argument_checks("tasks"):
        for t in cfg.tasks:
            get_task(t)  # unknown task names fail before the first episode
    if not cfg.tasks:
        raise ConfigError("tasks: expected at least one task", key="tasks")
    with argument_checks("split"):
        check_split(cfg.split)
    if cfg.video_size != 0 and cfg.video_size < 8:
        raise ConfigError(
            f"video_size: expected 0 (film the policy camera) or >= 8 px, got {cfg.video_size}", "video_size"
        )
    if cfg.video_size > 0 and cfg.video_camera is not None and cfg.video_camera not in DEFAULT_CAMERAS:
        known = list(DEFAULT_CAMERAS)
        raise ConfigError(f"video_camera={cfg.video_camera!r}: expected one of {known}", "video_camera")
    if cfg.video_size == 0 and cfg.video_camera is not None and cfg.video_camera not in cfg.env.cameras:
        cams = list(cfg.env.cameras)
        raise ConfigError(
            f"video_camera={cfg.video_camera!r} is not among env.cameras={cams} (video_size=0)",
            "video_camera",
        )
    if cfg.video_size == 0 and not cfg.env.cameras and (cfg.failure_videos > 0 or cfg.success_videos > 0):
        raise ConfigError(
            "video_size=0 films the policy's camera, but env.cameras is empty: set video_size", "video_size"
        )
    for key in ("episodes", "num_envs"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key}: expected >= 1, got {getattr(cfg, key)}", key=key)
    for key in ("reference_episodes", "max_episode_steps"):  # null: the default
        if getattr(cfg, key) is not None and getattr(cfg, key) < 1:
            raise ConfigError(f"{key}: expected >= 1 (or null), got {getattr(cfg, key)}", key=key)
    check_number(cfg.env.action_noise, "env.action_noise", 0, 1)  # metres per step
    for key in ("failure_videos", "success_videos", "threads", "language_episodes"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{key}: expected >= 0, got {getattr(cfg, key)}", key=key)
    if cfg.out == "":  # the current directory, never the output meant (null: a new directory per run)
        raise ConfigError("out: expected a directory path, got ''", "out")
    check_path_name(cfg.out, "out")
    check_path_name(cfg.checkpoint, "checkpoint")
    check_env_resources(cfg.env, cfg.tasks, cfg.num_envs, max(cfg.episodes, cfg.reference_episodes or 0), cfg.max_episode_steps, video_size=cfg.video_size)  # noqa: E501
    if cfg.checkpoint:
        with argument_checks("checkpoint"):
            cfg = _with_checkpoint(cfg)
    with argument_checks("policy"):
        get_policy_class(cfg.policy)
    with argument_checks("references"):
        for name in cfg.references:
            get_policy_class(name)
    return cfg


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+]+", "_", text).strip("_") or "run"


def default_out(cfg: EvalConfig, now: float | None = None) -> Path:
    """The run's own directory: outputs/eval/<tasks>-<policy or checkpoint name>-<timestamp> (a suffix
    -2, -3, ... when two runs start in the same second)."""
    if cfg.checkpoint:
        ck = Path(cfg.checkpoint)
        name = (
            f"{ck.parents[1].name}_{ck.name}"
            if ck.name.startswith("step_") and len(ck.parents) > 1
            else ck.name
        )
    else:
        name = cfg.policy
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    base = Path("outputs") / "eval" / f"{_slug('+'.join(cfg.tasks))}-{_slug(name)}-{stamp}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


# What an evaluation writes into `out`: the first three mark another run's results.
RESULTS = ("results.json", "report.md", "videos")
EVAL_OUTPUTS = (*RESULTS, "success_rate.png", "config.yaml")


def prepare_output(out: Path, overwrite: bool) -> None:
    """Refuse an `out` holding another run's results (ConfigError naming it and overwrite=true); with
    overwrite=true delete those results (EVAL_OUTPUTS only, nothing else in the directory)."""
    held = [name for name in RESULTS if (out / name).exists()]
    if not held:
        return
    if not overwrite:
        raise ConfigError(
            f"{out} already holds another run's results ({', '.join(held)}): pass overwrite=true to replace "
            "them, or choose another out= (leave it out for a new directory per run)",
            key="out",
            kind="output-exists",
        )
    for name in EVAL_OUTPUTS:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """Run the evaluation described by `cfg`; return the results dict (`out` receives the videos)."""
    cfg = check_config(cfg)
    if cfg.out is None:
        cfg = dataclasses.replace(cfg, out=str(default_out(cfg)))
    t0 = time.perf_counter()
    names = [cfg.policy] + [r for r in cfg.references if r != cfg.policy]
    factories = {n: policy_factory(n, cfg.policy_kwargs if n == cfg.policy else {}) for n in names}
    per_policy, rows, video_paths = {}, [], []
    for name in names:
        is_main = name == cfg.policy
        quota = (lambda: _VideoQuota(cfg.failure_videos, cfg.success_videos)) if is_main else None
        n_eps = cfg.episodes if is_main else (cfg.reference_episodes or cfg.episodes)
        per_task, results, written = run_policy(factories[name], cfg.tasks, cfg, n_eps, quota)
        per_policy[name] = {"tasks": per_task}
        rows += [{"policy": name, **r.to_dict()} for r in results]
        video_paths += written
    language = {}
    if cfg.language_check:
        make = factories[cfg.policy]
        for task in cfg.tasks:
            seeds = task_seeds(task, cfg.split, min(cfg.language_episodes or cfg.episodes, cfg.episodes))
            kw = _task_env_kwargs(cfg, task)
            language[task] = language_check(lambda i, t=task: make(t), task, kw, seeds, cfg.num_envs)
    wall = time.perf_counter() - t0
    return {
        **({"language": language} if cfg.language_check else {}),
        "policy": cfg.policy,
        "split": cfg.split,
        "tasks": list(cfg.tasks),
        "episodes_per_task": cfg.episodes,
        "seed_rule": f"sim.tasks.task_seeds(task, '{cfg.split}', n): the split's first n seeds",
        "num_envs": cfg.num_envs,
        "per_policy": per_policy,
        "episodes": rows,
        "videos": video_paths,
        "wall_time_s": wall,
        "episodes_per_min": 60.0 * len(rows) / wall if wall > 0 else 0.0,
    }


def main(argv: Sequence[str]) -> int:
    cfg = to_dataclass(compose("eval", argv), EvalConfig)
    check_config(cfg)  # bad arguments fail before anything is written
    if cfg.out is None:
        cfg = dataclasses.replace(cfg, out=str(default_out(cfg)))
    out = Path(cfg.out)
    prepare_output(out, cfg.overwrite)
    if cfg.threads > 0:
        import torch

        torch.set_num_threads(cfg.threads)
    save_resolved(cfg, out)
    results = evaluate(cfg)
    paths = write_report(results, out)
    print(f"[eval] {results['policy']} on {cfg.split} seeds, {results['wall_time_s']:.1f} s")
    print("\n".join(summary_lines(results)))
    print(f"  report: {paths['markdown']}  results: {paths['json']}  plot: {paths['plot']}")
    return 0

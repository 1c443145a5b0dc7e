"""`vla ros2 eval`: the closed-loop measurement through ROS 2 (re-exported by vla/commands/ros2.py,
where the CLI finds it). For each task it starts the sim robot and the node as two processes over
loopback DDS (`vla ros2 sim-robot` and `vla ros2 run`; `episode_enable`: the sim robot enables the node
per episode, as an operator would), runs the policy on the held-out seeds `vla eval` uses
(sim.tasks.task_seeds, the same split, env settings and horizon), and writes results.json (success with
Wilson 95% intervals, image -> command latency p50/p99, achieved command rate, safety interventions,
frame-set skew) and a one-paragraph console summary. `check_eval` checks every argument, including the
two processes' extra overrides, before any process starts (a bad one is one `ConfigError` line, exit 2).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robot_io.config import default_image_topic  # (also registers the ros2_* schemas check_eval composes)
from robot_io.inputs import InputSpec, checkpoint_inputs
from sim.camera import DEFAULT_CAMERAS
from sim.config import EnvConfig
from sim.tasks import check_split, get_task, task_seeds
from vla.commands.ros2_common import _check_at_least, _check_domain, _dds_env, _setup_logging
from vla.core.config import (
    ConfigError,
    argument_checks,
    check_number,
    check_path_name,
    compose,
    register_config,
    to_dataclass,
)
from vla.core.io import atomic_write_json
from vla.core.policy import get_policy_class
from vla.eval.metrics import wilson_interval

log = logging.getLogger("robot_io")

# Counters of the node that are the safety layer acting on a command the policy gave (clipped, refused, or
# not computed in time), as opposed to holds while an input is missing, unmatched or the arm disabled (in
# simulation every episode's reset teleports the arm: one joint_state_jump and a hold per episode).
INTERVENTIONS = (
    "translation_clipped",
    "rotation_clipped",
    "workspace_clipped",
    "joint_position_clipped",
    "joint_velocity_clipped",
    "gripper_hysteresis_held",
    "nonfinite_or_malformed_action",
    "nonfinite_or_malformed_joints",
    "hold_command_disagreement",
    "ik_error",
    "policy_late",
    "policy_error",
)


@register_config("ros2_eval")
@dataclass
class Ros2EvalConfig:
    """`vla ros2 eval`: a policy in closed loop through ROS 2 (sim robot + node, two processes, loopback
    DDS) on the held-out seeds of `vla eval` (configs/ros2_eval.yaml)."""

    env: EnvConfig = field(default_factory=EnvConfig)  # group `env`: cameras, image_size (as `vla eval`)
    checkpoint: str | None = None  # a VLA checkpoint or training run dir: policy "vla"
    policy: str = "expert"  # any policy name (an expert reads the sim robot's privileged info)
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=lambda: ["pick"])
    split: str = "heldout"
    episodes: int = 20  # per task: the split's first `episodes` seeds (sim.tasks.task_seeds)
    max_episode_steps: int | None = None  # None: the task's own horizon
    rate_hz: float = 10.0  # the sim robot's control rate (10 = the training rate, real time)
    node_rate_hz: float = 0.0  # the node's tick rate (0 = 4x rate_hz: a new frame set is taken up fast)
    policy_timeout_s: float = 0.0  # the node's policy deadline (0 = 0.9 control periods of rate_hz)
    max_skew_s: float = 0.05
    domain_id: int | None = None  # None: one derived from the process id (a private loopback domain)
    wait_for_command_s: float = 60.0  # per episode: how long the sim robot waits for the node's first command
    # extra `vla ros2 run` overrides (configs/ros2_eval.yaml: the sim's control profile; [] = the robot's)
    node_args: list[str] = field(default_factory=list)
    sim_args: list[str] = field(default_factory=list)  # extra `vla ros2 sim-robot` overrides
    out: str | None = None  # None: outputs/ros2_eval/<tasks>-<policy or checkpoint>-<timestamp>
    overwrite: bool = False  # replace the results of another run in an explicit out=


def _override(key: str, value: Any) -> str:
    """One hydra override `key=value` of a plain value (lists, None, bools written hydra's way)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, (list, tuple)):
        text = "[" + ",".join(str(v) for v in value) + "]"
    else:
        text = str(value)
    return f"{key}={text}"


def _eval_out(cfg: Ros2EvalConfig) -> Path:
    if cfg.out:
        return Path(cfg.out)
    name = Path(cfg.checkpoint).name if cfg.checkpoint else cfg.policy
    if name.startswith("step_") and cfg.checkpoint:
        name = f"{Path(cfg.checkpoint).parents[1].name}_{name}"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("outputs") / "ros2_eval" / f"{'+'.join(cfg.tasks)}-{name}-{stamp}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def check_eval(cfg: Ros2EvalConfig) -> tuple[Ros2EvalConfig, InputSpec, Path]:
    """`vla ros2 eval`'s arguments, before any process starts: (config with checkpoint -> policy "vla",
    what the policy reads, the output directory)."""
    for key in ("checkpoint", "out"):
        check_path_name(getattr(cfg, key), key)
    if not cfg.tasks:
        raise ConfigError("tasks: expected at least one task", "tasks")
    _check_domain(cfg.domain_id)
    cameras = list(DEFAULT_CAMERAS)
    if not cfg.env.cameras or any(c not in cameras for c in cfg.env.cameras):  # the sim robot's cameras
        raise ConfigError(f"env.cameras={list(cfg.env.cameras)}: expected some of {cameras}", "env.cameras")
    with argument_checks("tasks", "unknown-choice"):
        for t in cfg.tasks:
            get_task(t)
    with argument_checks("split", "unknown-choice"):
        check_split(cfg.split)
    _check_at_least(cfg, "episodes", 1, strict=False)
    _check_at_least(cfg, "rate_hz", 0, strict=True)
    if cfg.max_episode_steps is not None:  # null: the task's own horizon
        check_number(cfg.max_episode_steps, "max_episode_steps", 1)
    for key in ("node_rate_hz", "policy_timeout_s", "max_skew_s", "wait_for_command_s"):
        _check_at_least(cfg, key, 0, strict=False)
    with argument_checks("episodes"):
        task_seeds(cfg.tasks[0], cfg.split, cfg.episodes)
    if cfg.env.action_noise:
        raise ConfigError(
            "env.action_noise perturbs EE deltas; the sim robot runs joint targets: set 0", "env"
        )
    spec = InputSpec()
    if cfg.checkpoint:
        if not Path(cfg.checkpoint).exists():
            raise ConfigError(
                f"checkpoint directory not found: {cfg.checkpoint}", "checkpoint", "no-such-path"
            )
        with argument_checks("checkpoint"):
            spec = checkpoint_inputs(cfg.checkpoint)
        cfg = dataclasses.replace(cfg, policy="vla")
        missing = [c for c in spec.cameras or () if c not in cfg.env.cameras]
        if missing:
            raise ConfigError(
                f"{spec.source} reads cameras {list(spec.cameras or ())}, "
                f"but env.cameras={list(cfg.env.cameras)} "
                f"(missing {missing}): set env.cameras=[{','.join(spec.cameras or ())}]",
                "env.cameras",
            )
        if spec.image_size and spec.image_size != cfg.env.image_size:
            raise ConfigError(
                f"{spec.source} takes {spec.image_size} px images, env.image_size={cfg.env.image_size}: "
                f"set env.image_size={spec.image_size}",
                "env.image_size",
            )
    else:
        with argument_checks("policy", "unknown-choice"):
            get_policy_class(cfg.policy)
    for key, config in (("node_args", "ros2_run"), ("sim_args", "ros2_sim_robot")):
        try:  # the two processes' extra arguments, checked here rather than by a process that fails
            compose(config, list(getattr(cfg, key)))
        except ConfigError as e:
            raise ConfigError(f"{key}: {e}", key) from e
    out = _eval_out(cfg)
    if out.is_file():
        raise ConfigError(f"out={out} is a file; expected a directory", "out")
    held = [n for n in ("results.json",) if (out / n).exists()]
    if held and not cfg.overwrite:
        raise ConfigError(
            f"{out} already holds another run's results (results.json): pass overwrite=true to replace them, "
            "or choose another out=",
            "out",
            "output-exists",
        )
    return cfg, spec, out


def _launch(args: list[str], log_path: Path) -> subprocess.Popen:
    env = {**os.environ}
    _dds_env()
    env["CYCLONEDDS_URI"] = os.environ["CYCLONEDDS_URI"]
    with open(log_path, "w") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "vla.cli", *args], env=env, stdout=log_file, stderr=subprocess.STDOUT
        )


def _stop(proc: subprocess.Popen, timeout: float = 20.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    return proc.returncode


def run_task(cfg: Ros2EvalConfig, spec: InputSpec, task: str, out: Path, domain: int) -> dict[str, Any]:
    """One task: the sim robot on the split's seeds + the node with the policy; both processes' results."""
    seeds = task_seeds(task, cfg.split, cfg.episodes)
    assert seeds == list(range(seeds[0], seeds[0] + len(seeds)))  # the sim robot runs seed + episode
    cameras = list(spec.cameras) if spec.cameras is not None else list(cfg.env.cameras)
    topics = "{" + ",".join(f"{c}:{default_image_topic(c)}" for c in cameras) + "}"
    expert = cfg.checkpoint is None
    sim_json, node_json = out / f"sim_{task}.json", out / f"node_{task}.json"
    for f in (sim_json, node_json):
        f.unlink(missing_ok=True)
    env_fields = {
        k: v for k, v in dataclasses.asdict(cfg.env).items() if k not in ("action_space", "action_noise")
    }
    sim_args = [
        "ros2", "sim-robot", f"domain_id={domain}", f"task={task}", f"task.split={cfg.split}",
        f"seed={seeds[0]}", f"episodes={len(seeds)}", f"rate_hz={cfg.rate_hz}", "camera=",
        "episode_enable=true", f"wait_for_command_s={cfg.wait_for_command_s}",
        f"publish_sim_info={'true' if expert else 'false'}", f"result={sim_json}",
        *(_override(f"env.{k}", v) for k, v in env_fields.items()),
        *([f"task.max_episode_steps={cfg.max_episode_steps}"] if cfg.max_episode_steps else []),
        *cfg.sim_args,
    ]  # fmt: skip
    node_rate = cfg.node_rate_hz or 4 * cfg.rate_hz
    node_args = [
        "ros2", "run", f"domain_id={domain}", f"policy={cfg.policy}", f"+cameras={topics}",
        "enabled=false", "allow_unauthenticated_enable=true", f"rate_hz={node_rate}",
        f"policy_timeout_s={cfg.policy_timeout_s or 0.9 / cfg.rate_hz}", f"max_skew_s={cfg.max_skew_s}",
        f"use_sim_info={'true' if expert else 'false'}", f"summary={node_json}", "status_log_s=10",
        *([f"checkpoint={cfg.checkpoint}"] if cfg.checkpoint else []),
        *(_override(f"+policy_kwargs.{k}", v) for k, v in cfg.policy_kwargs.items()),
        *([f"+policy_kwargs.task={task}"] if expert and "task" in _factory_params(cfg.policy) else []),
        *cfg.node_args,
    ]  # fmt: skip
    horizon = cfg.max_episode_steps or 400
    budget = (
        len(seeds) * (horizon / cfg.rate_hz + cfg.wait_for_command_s / 4 + 5) + cfg.wait_for_command_s + 60
    )
    node = _launch(node_args, out / f"node_{task}.log")
    sim = _launch(sim_args, out / f"sim_{task}.log")
    try:
        try:
            sim_rc = sim.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            sim_rc = _stop(sim)
            log.warning("%s: the sim robot ran past %.0f s and was stopped", task, budget)
    finally:
        node_rc = _stop(node)
        _stop(sim)
    problems = []
    for name, rc, f in (("sim robot", sim_rc, sim_json), ("node", node_rc, node_json)):
        if rc != 0 or not f.is_file():
            tail = (out / f"{f.stem}.log").read_text()[-1500:]
            problems.append(f"{name} exited {rc} ({out / (f.stem + '.log')}):\n{tail}")
    if problems:
        raise RuntimeError(f"vla ros2 eval: task {task}: " + "\n".join(problems))
    sim_res, node_res = json.loads(sim_json.read_text()), json.loads(node_json.read_text())
    return {"seeds": seeds, "sim": sim_res, "node": node_res}


def _factory_params(policy: str) -> set[str]:
    return set(inspect.signature(get_policy_class(policy)).parameters)


def task_summary(run: dict[str, Any]) -> dict[str, Any]:
    """Per-task figures from the two processes' results."""
    episodes = run["sim"]["results"]
    n, ok = len(episodes), sum(bool(e["success"]) for e in episodes)
    lo, hi = wilson_interval(ok, n)
    node = run["node"]
    counters = node.get("counters", {})
    steps = sum(e["length"] for e in episodes)
    commanded = sum(e.get("commands", 0) for e in episodes)
    duration = sum(e.get("duration_s", 0.0) for e in episodes)
    return {
        "episodes": n,
        "successes": ok,
        "success_rate": ok / n if n else 0.0,
        "success_ci95": [round(lo, 4), round(hi, 4)],
        "seeds": run["seeds"],
        "mean_length": steps / n if n else 0.0,
        "latency_ms": node.get("latency_ms"),
        "command_rate_hz": node.get("command_rate_hz"),
        "sim_step_rate_hz": round(steps / duration, 3) if duration else None,
        "commands_per_step": round(commanded / steps, 3) if steps else None,
        "skew_ms": node.get("skew_ms"),
        "interventions": {k: counters[k] for k in INTERVENTIONS if counters.get(k)},
        "holds": {
            k: v
            for k, v in counters.items()
            if k not in INTERVENTIONS
            and (k.startswith("hold_") or k in ("joint_state_jump", "input_mismatch"))
        },
        "episode_results": episodes,
    }


def ros2_eval(argv: Sequence[str]) -> int:
    _setup_logging()
    cfg = to_dataclass(compose("ros2_eval", list(argv)), Ros2EvalConfig)
    cfg, spec, out = check_eval(cfg)
    out.mkdir(parents=True, exist_ok=True)
    domain = cfg.domain_id if cfg.domain_id is not None else 100 + os.getpid() % 100
    start = time.monotonic()
    per_task = {}
    for task in cfg.tasks:
        per_task[task] = task_summary(run_task(cfg, spec, task, out, domain))
    results = {
        "command": "vla ros2 eval",
        "policy": cfg.policy,
        "checkpoint": cfg.checkpoint,
        "split": cfg.split,
        "seed_rule": f"sim.tasks.task_seeds(task, '{cfg.split}', n): the split's first n seeds (as vla eval)",
        "rate_hz": cfg.rate_hz,
        "node_rate_hz": cfg.node_rate_hz or 4 * cfg.rate_hz,
        "node_args": list(cfg.node_args),
        "env": dataclasses.asdict(cfg.env),
        "transport": "cyclonedds loopback, two processes",
        "tasks": per_task,
        "wall_time_s": round(time.monotonic() - start, 1),
    }
    atomic_write_json(out / "results.json", results)
    for task, m in per_task.items():
        lat = m["latency_ms"] or {}
        lo, hi = m["success_ci95"]
        inter = sum(m["interventions"].values())
        print(
            f"[ros2 eval] {task}: {cfg.policy} through ROS 2 (sim robot + node over loopback DDS, "
            f"{cfg.split} seeds {m['seeds'][0]}..{m['seeds'][-1]}) succeeded in "
            f"{m['successes']}/{m['episodes']} episodes ({100 * m['success_rate']:.0f}%, 95% CI "
            f"{100 * lo:.0f}-{100 * hi:.0f}%); image -> command latency p50 {lat.get('p50')} ms, "
            f"p99 {lat.get('p99')} ms; {m['command_rate_hz']} commands/s while "
            f"commanding at a {cfg.rate_hz:g} Hz sim ({m['commands_per_step']} commands per sim step); "
            f"{inter} safety interventions {m['interventions'] or ''}; results in {out / 'results.json'}"
        )
    return 0

"""Command-line entries: `vla ros2 run`, `vla ros2 sim-robot`, `vla ros2 eval`, `vla import rosbag`.

    vla ros2 sim-robot task=pick episodes=1 rate_hz=10 env.image_size=128
    vla ros2 run policy=expert +policy_kwargs.task=pick use_sim_info=true enabled=true robot=panda
    vla ros2 run checkpoint=outputs/demo/train \
        +cameras='{static: camera/static/image_raw, wrist: camera/wrist/image_raw}' record=outputs/bag1
    vla ros2 run config=ros2_run_fr3 checkpoint=RUN dry_run=true     # a preset: configs/ros2_run_*.yaml
    vla ros2 eval checkpoint=outputs/demo/train tasks=[pick_colour] episodes=20 env.image_size=64
    vla import rosbag outputs/bag1 out=outputs/teleop.zarr

`vla ros2 run` composes configs/ros2_run.yaml, or with `config=NAME` another preset of the same schema
(configs/ros2_run_*.yaml: `config=ros2_run_fr3`, a Franka Research 3 on franka_ros2), and checks, before
it starts anything, that every input the policy reads has a topic: a checkpoint's cameras (and the depth
its point clouds need) must each be configured, and its actions must be the node's (robot_io.inputs); a
missing one is one ConfigError line, as is a `stream.*` the policy cannot serve (robot_io.trajectory).
`dry_run=true` runs everything but publishes only diagnostics. `vla ros2 eval` is the
closed-loop measurement through ROS 2: for each task it starts the sim robot and the node as two
processes over loopback DDS (`episode_enable`: the sim robot enables the node per episode, as an
operator would), runs the policy on the held-out seeds `vla eval` uses (sim.tasks.task_seeds, the same
split, env settings and horizon), and writes results.json (success with Wilson 95% intervals, image ->
command latency p50/p99, achieved command rate, safety interventions, frame-set skew) and a
one-paragraph console summary.

Each command checks its arguments before it starts anything (a transport, a policy, a robot, a store) and
raises a bad one as a `ConfigError`: one line and exit code 2 from the CLI. `record=` never names an
existing directory (a recording is not overwritten). `vla import rosbag` into a store that already holds
episodes of the same recording (told apart by the bag's metadata.yaml: the episodes' start times fall in
the recording's time span) refuses, unless `overwrite=true` replaces those episodes; the store's meta
lists every bag imported (`bags`: path, start, duration, message count). The DDS transport uses
Cyclone's CYCLONEDDS_URI; when it is unset these commands default to the loopback-only config shipped in
robot_io/cyclonedds_loopback.xml (pass a config of your network for a real robot). These functions are
the only place the ROS 2 part instantiates objects from config.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robot_io import config as _config  # noqa: F401  (registers the ros2_* schemas on import)
from robot_io.bag import BagRecorder
from robot_io.bag import import_rosbag as _import
from robot_io.config import ImportRosbagConfig, NodeConfig, SimRobotConfig, default_image_topic
from robot_io.dds import loopback_config
from robot_io.inputs import InputSpec, checkpoint_inputs, resolve_inputs
from robot_io.kinematics import Kinematics, resolve_urdf, urdf_joint_limits
from robot_io.node import VlaNode
from robot_io.sim_robot import SimRobot
from robot_io.trajectory import check_stream
from robot_io.transport import list_transports, make_transport
from sim.camera import DEFAULT_CAMERAS
from sim.config import EnvConfig
from sim.tasks import check_split, get_task, task_seeds
from vla.core.config import (
    ConfigError,
    argument_checks,
    check_number,
    check_path_name,
    compose,
    config_dir,
    register_config,
    shown,
    split_positionals,
    to_dataclass,
)
from vla.core.io import atomic_write_json
from vla.core.policy import get_policy_class, make_policy
from vla.data.store import EpisodeStore
from vla.eval.metrics import wilson_interval

log = logging.getLogger("robot_io")


@register_config("import_rosbag")
@dataclass
class ImportRosbagCommandConfig(ImportRosbagConfig):
    """`vla import rosbag BAG out=STORE [overwrite=true]` (configs/ros2_import_rosbag.yaml)."""

    overwrite: bool = False  # replace the episodes `out` already holds from this recording


def _dds_env() -> None:
    if "CYCLONEDDS_URI" not in os.environ:
        os.environ["CYCLONEDDS_URI"] = loopback_config()


def _transport(name: str, domain_id: int | None, node_name: str) -> Any:
    if name == "dds":
        _dds_env()
        return make_transport("dds", domain_id=domain_id)
    if name == "rclpy":
        return make_transport("rclpy", node_name=node_name, domain_id=domain_id)
    return make_transport(name)  # raises the clear "unknown transport" error


def build_policy(name: str, kwargs: dict[str, Any], checkpoint: str | None) -> Any:
    """A policy from the registry (an unknown name, or a missing dependency, is the registry's error)."""
    kw = dict(kwargs)
    if checkpoint:
        kw["checkpoint"] = checkpoint
    try:
        return make_policy(name, **kw)
    except TypeError as e:  # a keyword the policy's factory does not take
        raise ValueError(f"policy {name!r}: bad arguments {sorted(kw)}: {e}") from e


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")


def _check_transport(name: str) -> None:
    if name not in list_transports():
        raise ConfigError(
            f"unknown transport {name!r}; choose one of: {', '.join(list_transports())}",
            "transport",
            "unknown-choice",
        )


def check_camera_name(camera: str, key: str = "camera") -> None:
    """A camera name, which becomes the observation key images/<camera> (of a policy, of a store)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", camera):
        raise ConfigError(f"{key}={shown(camera)!r}: expected a name of 1-64 letters, digits, _ or -", key)


def _check_domain(domain_id: int | None) -> None:
    if domain_id is not None:  # null: $ROS_DOMAIN_ID or 0
        check_number(domain_id, "domain_id", 0, 232)  # the DDS domain ids


def _check_at_least(cfg: Any, key: str, low: float, strict: bool) -> None:
    """A finite number >= low (> low when strict): NaN and infinity are refused too (a NaN duration
    passed `>= 0` and ran without end)."""
    check_number(getattr(cfg, key), key, low, low_open=strict)


def check_robot(limits: Any, key: str = "robot") -> None:
    """What `SafetyLimits.validate` leaves: some joints, a joint margin >= 0, and a URDF that exists, is a
    URDF (an XML <robot>) and has the configured joints (with limits) and EE link: else a ConfigError
    before anything loads it (PyBullet's own error is a traceback)."""
    import xml.etree.ElementTree as ET

    if not limits.joint_names:
        raise ConfigError(f"{key}.joint_names: expected the arm's joints, got []", f"{key}.joint_names")
    check_number(limits.joint_margin, f"{key}.joint_margin", 0)
    if not limits.urdf:
        raise ConfigError(f"{key}.urdf: expected a URDF file, got ''", f"{key}.urdf")
    check_path_name(limits.urdf, f"{key}.urdf")
    with argument_checks(f"{key}.urdf", "no-such-path"):
        path = resolve_urdf(limits.urdf)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise ConfigError(f"{key}.urdf={limits.urdf} is not a URDF (XML): {e}", f"{key}.urdf") from e
    if root.tag != "robot":
        raise ConfigError(
            f"{key}.urdf={limits.urdf} is not a URDF: its root element is <{root.tag}>, not <robot>",
            f"{key}.urdf",
        )
    with argument_checks(f"{key}.joint_names"):
        urdf_joint_limits(str(path), limits.joint_names)
    links = sorted(str(link.get("name")) for link in root.iter("link"))
    if limits.ee_link not in links:
        raise ConfigError(
            f"{key}.ee_link={limits.ee_link!r} is not a link of {limits.urdf} ({', '.join(links)})",
            f"{key}.ee_link",
        )


def check_run(cfg: NodeConfig) -> None:
    """`vla ros2 run`'s arguments, before anything starts: a problem is one ConfigError line (exit 2)."""
    for key in ("checkpoint", "record", "summary", "enable_token_file"):
        check_path_name(getattr(cfg, key), key)
    _check_transport(cfg.transport)
    _check_domain(cfg.domain_id)
    for camera in [cfg.camera, *cfg.cameras]:
        check_camera_name(camera, "camera" if camera == cfg.camera else "cameras")
    _check_at_least(cfg, "rate_hz", 0, strict=True)
    for key in ("duration_s", "max_steps", "policy_timeout_s", "status_log_s", "max_skew_s"):
        _check_at_least(cfg, key, 0, strict=False)
    with argument_checks("robot"):
        cfg.robot.validate(f"robot config {cfg.robot.name!r}")
    check_robot(cfg.robot)
    with argument_checks("stream"):
        check_stream(cfg.stream)  # whether the policy predicts chunks is checked once it is loaded
    with argument_checks("policy", "unknown-choice"):
        get_policy_class(cfg.policy)
    checkpoint = cfg.checkpoint or cfg.policy_kwargs.get("checkpoint")
    if checkpoint and not Path(checkpoint).exists():
        raise ConfigError(f"checkpoint directory not found: {checkpoint}", "checkpoint", "no-such-path")
    # The start-up check: every input the checkpoint reads has a topic (and its actions are the node's).
    spec = InputSpec()
    if checkpoint:
        with argument_checks("checkpoint"):
            spec = checkpoint_inputs(checkpoint)
    resolve_inputs(cfg, spec)
    if cfg.record and Path(cfg.record).exists():
        raise ConfigError(
            f"record={cfg.record} already exists (a recording is never overwritten): choose a new directory",
            "record",
            "output-exists",
        )


def run_config(argv: Sequence[str]) -> tuple[str, list[str]]:
    """`vla ros2 run`'s preset: `config=NAME` (a configs/ros2_run*.yaml of the NodeConfig schema; default
    ros2_run) and the other arguments. An unknown name is a ConfigError listing the presets."""
    names = [a.partition("=")[2] for a in argv if a.startswith("config=")]
    rest = [a for a in argv if not a.startswith("config=")]
    if not names:
        return "ros2_run", rest
    presets = sorted(p.stem for p in config_dir().glob("ros2_run*.yaml"))
    if names[-1] not in presets:
        raise ConfigError(
            f"config={shown(names[-1])!r}: expected one of {presets} (configs/ros2_run*.yaml)",
            "config",
            "unknown-choice",
        )
    return names[-1], rest


def ros2_run(argv: Sequence[str]) -> int:
    _setup_logging()
    name, argv = run_config(argv)
    cfg = to_dataclass(compose(name, list(argv)), NodeConfig)
    check_run(cfg)
    limits = cfg.robot
    with argument_checks("policy"):  # unknown policy keywords, a checkpoint that does not load
        policy = build_policy(cfg.policy, cfg.policy_kwargs, cfg.checkpoint)
    with argument_checks("stream.points"):  # stream.points > 1 needs a policy that predicts chunks
        check_stream(cfg.stream, policy)
    transport = _transport(cfg.transport, cfg.domain_id, "vla_node")
    recorder = None
    if cfg.record:
        recorder = BagRecorder(cfg.record)
    node = VlaNode(cfg, policy, transport, limits, recorder=recorder)
    signal.signal(signal.SIGTERM, lambda *_: node._stop.set())
    node.start()
    start = time.monotonic()
    try:
        while not node.wait(0.5):
            if cfg.duration_s and time.monotonic() - start > cfg.duration_s:
                break
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()
        transport.close()
        if recorder is not None:
            recorder.close()
    if cfg.summary:
        atomic_write_json(cfg.summary, node.summary())
    lat = sorted(node.latencies_ms)
    p50 = lat[len(lat) // 2] if lat else float("nan")
    what = "commands computed, none published (dry run)," if cfg.dry_run else "commands"
    print(
        f"vla ros2 run: {node.steps} {what} in {time.monotonic() - start:.1f} s, "
        f"latency p50 {p50:.1f} ms, interventions {dict(node.safety.counters)}"
        + (f", bag {cfg.record} ({recorder.count} messages)" if recorder else "")
    )
    return 0


def check_sim_robot(cfg: SimRobotConfig) -> None:
    """`vla ros2 sim-robot`'s arguments, before the simulator or a transport starts."""
    check_path_name(cfg.result, "result")
    _check_transport(cfg.transport)
    _check_domain(cfg.domain_id)
    _check_at_least(cfg, "rate_hz", 0, strict=True)
    for key in ("episodes", "wait_for_command_s", "seed"):
        _check_at_least(cfg, key, 0, strict=False)
    if cfg.task.max_episode_steps is not None:  # null: the task's own horizon
        check_number(cfg.task.max_episode_steps, "task.max_episode_steps", 1)
    for key, allowed in (("encoding", ("rgb8", "bgr8")), ("depth_encoding", ("32FC1", "16UC1"))):
        if getattr(cfg, key) not in allowed:
            raise ConfigError(
                f"{key} must be {'/'.join(allowed)}, got {getattr(cfg, key)!r}",
                key,
                "unknown-choice",
            )


def ros2_sim_robot(argv: Sequence[str]) -> int:
    _setup_logging()
    cfg = to_dataclass(compose("ros2_sim_robot", list(argv)), SimRobotConfig)
    check_sim_robot(cfg)
    transport = _transport(cfg.transport, cfg.domain_id, "sim_robot")
    try:
        robot = SimRobot(cfg, transport)
    except BaseException:
        transport.close()
        raise
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        results = robot.run()
    finally:
        robot.close()
        transport.close()
    ok = sum(r["success"] for r in results)
    print(f"vla ros2 sim-robot: {ok}/{len(results)} episodes succeeded: {json.dumps(results)}")
    if cfg.result:
        atomic_write_json(
            cfg.result, {"results": results, "commands": robot.commands, "malformed": robot.malformed}
        )
    return 0


# ------------------------------------------------------------------------------------------ vla ros2 eval
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


def bag_fingerprint(bag: str | os.PathLike) -> dict[str, Any]:
    """What tells one recording from another, from its metadata.yaml alone (no message is read): the
    resolved path, the start time and duration (ns) and the message count. A ConfigError (exit 2) when
    `bag` is no rosbag2 directory."""
    from ruamel.yaml import YAML, YAMLError

    check_path_name(bag, "bag")
    path = Path(bag)
    if not (path / "metadata.yaml").is_file():
        raise ConfigError(f"rosbag2 directory not found (no metadata.yaml): {bag}", "bag", "no-such-path")
    try:
        info = (YAML(typ="safe").load((path / "metadata.yaml").read_text()) or {})[
            "rosbag2_bagfile_information"
        ]
        return {
            "path": str(path.resolve()),
            "start_ns": int(info["starting_time"]["nanoseconds_since_epoch"]),
            "duration_ns": int(info["duration"]["nanoseconds"]),
            "message_count": int(info["message_count"]),
        }
    except (YAMLError, KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{path / 'metadata.yaml'}: not a rosbag2 listing ({e!r})", "bag") from e


def episodes_of_recording(store: Any, fp: dict[str, Any]) -> list[int]:
    """Indices of the store's episodes imported from the recording `fp` describes: source rosbag, and an
    episode start inside the recording's time span (the path does not matter: a copied bag is the same
    recording; a new recording at the same path is not)."""
    lo, hi = fp["start_ns"], fp["start_ns"] + fp["duration_ns"]
    out = []
    for i in range(store.num_episodes):
        meta = store.episode_meta(i)
        start = meta.get("start_ns")
        if meta.get("source") == "rosbag" and isinstance(start, int) and lo <= start <= hi:
            out.append(i)
    return out


def _check_import_output(cfg: ImportRosbagCommandConfig, fp: dict[str, Any]) -> list[int]:
    """The episodes of this recording that `out` holds already (to replace with overwrite=true); a
    ConfigError when it holds some and overwrite is false, or when `out` is something else."""
    if not cfg.out:  # "" is the current directory, never the store meant
        raise ConfigError("out: expected an episode store path, got ''", "out")
    check_path_name(cfg.out, "out")
    out = Path(cfg.out)
    if not out.exists():
        return []
    if not (out / "zarr.json").is_file():
        if out.is_dir() and not any(out.iterdir()):
            return []
        raise ConfigError(f"out={cfg.out} exists and is not an episode store", "out", "output-exists")
    with argument_checks("out"):
        store = EpisodeStore.open(out)
    try:
        held = episodes_of_recording(store, fp)
    finally:
        store.close()
    if held and not cfg.overwrite:
        start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(fp["start_ns"] * 1e-9))
        raise ConfigError(
            f"{cfg.out} already holds {len(held)} episodes of this recording ({cfg.bag}: {start}, "
            f"{fp['message_count']} messages): pass overwrite=true to replace them, or choose another out=",
            "out",
            "output-exists",
        )
    return held


MAX_IMPORT_HZ = 1000.0  # a resampling rate above the recording's messages only repeats frames


def import_rosbag(argv: Sequence[str]) -> int:
    node = compose("ros2_import_rosbag", split_positionals(argv, ["bag"]))
    cfg = to_dataclass(node, ImportRosbagCommandConfig)
    fp = bag_fingerprint(cfg.bag)
    check_number(cfg.rate_hz, "rate_hz", 0, MAX_IMPORT_HZ, low_open=True)  # frames per second of the store
    check_camera_name(cfg.camera)
    with argument_checks("robot"):
        cfg.robot.validate(f"robot config {cfg.robot.name!r}")
    check_robot(cfg.robot)
    replaced = _check_import_output(cfg, fp)
    if Path(cfg.out).is_dir() and not any(Path(cfg.out).iterdir()):
        Path(cfg.out).rmdir()  # an empty directory is filled: the store is created in its place
    limits = cfg.robot
    kin = Kinematics(limits.urdf, limits.joint_names, limits.ee_link)
    try:
        ids = _import(
            cfg.bag,
            cfg.out,
            kin,
            camera=cfg.camera,
            rate_hz=cfg.rate_hz,
            task=cfg.task_label,
            topics=cfg.topics,
        )
    finally:
        kin.close()
    # Provenance, and the replaced episodes of an earlier import of this recording (only now that the new
    # ones are in: a failed import leaves the store as it was). New episodes come after the old ones.
    with EpisodeStore.open(cfg.out, mode="a") as store:
        if replaced:
            store.delete_episodes(replaced)
        bags = [b for b in store.meta.get("bags", []) if not (replaced and _same_recording(b, fp))]
        store.update_meta(bags=[*bags, {**fp, "episodes": len(ids)}])
        first = store.num_episodes - len(ids)
    ids = list(range(first, first + len(ids)))
    note = f", replacing {len(replaced)} of an earlier import" if replaced else ""
    print(f"vla import rosbag: {len(ids)} episodes from {cfg.bag} -> {cfg.out} (ids {ids}{note})")
    return 0


def _same_recording(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two fingerprints' time spans overlap (one recording, possibly grown since)."""
    a0, b0 = int(a.get("start_ns", -1)), int(b.get("start_ns", -1))
    return a0 <= b0 + int(b.get("duration_ns", 0)) and b0 <= a0 + int(a.get("duration_ns", 0))

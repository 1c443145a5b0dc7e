"""Command-line entries: `vla ros2 run`, `vla ros2 sim-robot`, `vla ros2 eval`, `vla import rosbag`.

    vla ros2 sim-robot task=pick episodes=1 rate_hz=10 env.image_size=128
    vla ros2 run policy=expert +policy_kwargs.task=pick use_sim_info=true enabled=true robot=panda
    vla ros2 run checkpoint=outputs/demo/train \
        +cameras='{static: camera/static/image_raw, wrist: camera/wrist/image_raw}' record=outputs/bag1
    vla ros2 run config=ros2_run_fr3 checkpoint=RUN dry_run=true     # a preset: configs/ros2_run_*.yaml
    vla ros2 eval checkpoint=outputs/demo/train tasks=[pick_colour] episodes=20 env.image_size=64
    vla import rosbag outputs/bag1 out=outputs/teleop.zarr

This module holds `run`, `sim-robot` and `import rosbag`; `vla ros2 eval` lives in
vla/commands/ros2_eval.py, and what the commands share (transport, logging, policy, the common argument
checks) in vla/commands/ros2_common.py. Their public names are re-exported here (`__all__`), where the
CLI's table (vla/cli.py) and the colcon package find them.

`vla ros2 run` composes configs/ros2_run.yaml, or with `config=NAME` another preset of the same schema
(configs/ros2_run_*.yaml: `config=ros2_run_fr3`, a Franka Research 3 on franka_ros2), and checks, before
it starts anything, that every input the policy reads has a topic: a checkpoint's cameras (and the depth
its point clouds need) must each be configured, and its actions must be the node's (robot_io.inputs); a
missing one is one ConfigError line, as is a `stream.*` the policy cannot serve (robot_io.trajectory).
`dry_run=true` runs everything but publishes only diagnostics. `vla ros2 eval` is the closed-loop
measurement through ROS 2 (the sim robot and the node as two processes over loopback DDS, on the
held-out seeds `vla eval` uses; see vla/commands/ros2_eval.py).

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

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot_io import config as _config  # noqa: F401  (registers the ros2_* schemas on import)
from robot_io.bag import BagRecorder
from robot_io.bag import import_rosbag as _import
from robot_io.config import ImportRosbagConfig, NodeConfig, SimRobotConfig
from robot_io.inputs import InputSpec, checkpoint_inputs, resolve_inputs
from robot_io.kinematics import Kinematics
from robot_io.node import VlaNode
from robot_io.sim_robot import SimRobot
from robot_io.trajectory import check_stream
from vla.commands.ros2_common import (
    _check_at_least,
    _check_domain,
    _check_transport,
    _setup_logging,
    _transport,
    build_policy,
    check_camera_name,
    check_robot,
)
from vla.commands.ros2_eval import (
    INTERVENTIONS,
    Ros2EvalConfig,
    check_eval,
    ros2_eval,
    run_task,
    task_summary,
)
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
from vla.core.policy import get_policy_class
from vla.data.store import EpisodeStore

# The public names of the ROS 2 commands, those of vla/commands/ros2_common.py and ros2_eval.py included:
# the CLI's table (vla/cli.py), the colcon package and the tests import them from here.
__all__ = [
    "INTERVENTIONS",
    "MAX_IMPORT_HZ",
    "ImportRosbagCommandConfig",
    "Ros2EvalConfig",
    "bag_fingerprint",
    "build_policy",
    "check_camera_name",
    "check_eval",
    "check_robot",
    "check_run",
    "check_sim_robot",
    "episodes_of_recording",
    "import_rosbag",
    "log",
    "ros2_eval",
    "ros2_run",
    "ros2_sim_robot",
    "run_config",
    "run_task",
    "task_summary",
]

log = logging.getLogger("robot_io")


@register_config("import_rosbag")
@dataclass
class ImportRosbagCommandConfig(ImportRosbagConfig):
    """`vla import rosbag BAG out=STORE [overwrite=true]` (configs/ros2_import_rosbag.yaml)."""

    overwrite: bool = False  # replace the episodes `out` already holds from this recording


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

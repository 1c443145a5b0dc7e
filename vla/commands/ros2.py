"""Command-line entries: `vla ros2 run`, `vla ros2 sim-robot`, `vla import rosbag` (hydra overrides).

    vla ros2 sim-robot task=pick episodes=1 rate_hz=10 env.image_size=128
    vla ros2 run policy=expert +policy_kwargs.task=pick use_sim_info=true enabled=true robot=panda
    vla ros2 run policy=vla checkpoint=outputs/ckpt record=outputs/bag1
    vla import rosbag outputs/bag1 out=outputs/teleop.zarr

The DDS transport uses Cyclone's CYCLONEDDS_URI; when it is unset these commands default to the
loopback-only config shipped in robot_io/cyclonedds_loopback.xml (pass a config of your network for a
real robot). These functions are the only place the ROS 2 part instantiates objects from config.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from robot_io import config as _config  # noqa: F401  (registers the ros2_* schemas on import)
from robot_io.bag import BagRecorder
from robot_io.bag import import_rosbag as _import
from robot_io.config import ImportRosbagConfig, NodeConfig, SimRobotConfig
from robot_io.dds import loopback_config
from robot_io.kinematics import Kinematics
from robot_io.node import VlaNode
from robot_io.sim_robot import SimRobot
from robot_io.transport import make_transport
from vla.core.config import compose, split_positionals, to_dataclass
from vla.core.io import atomic_write_json
from vla.core.policy import make_policy

log = logging.getLogger("robot_io")


def _compose(name: str, argv: Sequence[str]) -> Any:
    """compose() with hydra's composition errors (unknown robot, bad key) turned into ValueError."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return compose(name, list(argv))
    except (HydraException, OmegaConfBaseException) as e:
        raise ValueError(f"{name}: {str(e).splitlines()[0]}") from e


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


def ros2_run(argv: Sequence[str]) -> int:
    _setup_logging()
    cfg = to_dataclass(_compose("ros2_run", argv), NodeConfig)
    if cfg.rate_hz <= 0:
        raise ValueError(f"ros2 run: rate_hz must be positive, got {cfg.rate_hz}")
    limits = cfg.robot
    limits.validate(f"robot config {limits.name!r}")
    policy = build_policy(cfg.policy, cfg.policy_kwargs, cfg.checkpoint)
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
    lat = sorted(node.latencies_ms)
    p50 = lat[len(lat) // 2] if lat else float("nan")
    print(
        f"vla ros2 run: {node.steps} commands in {time.monotonic() - start:.1f} s, "
        f"latency p50 {p50:.1f} ms, interventions {dict(node.safety.counters)}"
        + (f", bag {cfg.record} ({recorder.count} messages)" if recorder else "")
    )
    return 0


def ros2_sim_robot(argv: Sequence[str]) -> int:
    _setup_logging()
    cfg = to_dataclass(_compose("ros2_sim_robot", argv), SimRobotConfig)
    transport = _transport(cfg.transport, cfg.domain_id, "sim_robot")
    robot = SimRobot(cfg, transport)
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


def import_rosbag(argv: Sequence[str]) -> int:
    cfg = to_dataclass(_compose("ros2_import_rosbag", split_positionals(argv, ["bag"])), ImportRosbagConfig)
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
    print(f"vla import rosbag: {len(ids)} episodes from {cfg.bag} -> {cfg.out} (ids {ids})")
    return 0

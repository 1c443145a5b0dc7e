"""What a policy reads and the topics that carry it: the node's inputs, resolved and checked at start-up.

`InputSpec` is what a policy reads: its cameras (images/<camera>), the cameras whose depth its point
clouds are built from (depth/<camera>, back-projected inside the checkpoint's processor by the project's
point-cloud pipeline with the camera models saved at training time), the square image size its model
takes, whether it reads the state, and its action size. `checkpoint_inputs(path)` reads it from a
checkpoint's config.json and processor.json without loading the weights; `policy_inputs(policy)` from a
loaded VLAPolicy (behind any wrapper); any other policy (an expert, `constant`) reads whatever cameras
the node is configured with. `resolve_inputs(cfg, spec)` maps every input to the topics configured for
it (robot_io.config.configured_cameras) and raises `ConfigError` (one line, exit 2 from the CLI) when a
camera or depth topic it needs is not configured, or when the policy's actions are not the node's
(7-D end-effector deltas). The `*_problem` functions check one received message against what the policy
needs and return one line naming the topic, what was expected and what came, or None: the node holds on
such a message (`hold_input_mismatch`) and logs that line, instead of feeding the policy what it was
never trained on.

    spec = checkpoint_inputs("outputs/demo/train")   # cameras ('static', 'wrist'), image_size 64, ...
    inputs = resolve_inputs(node_cfg, spec)           # NodeInputs (camera and depth topics), or ConfigError
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_io import convert, msgs
from robot_io.config import CameraTopics, configured_cameras, default_image_topic
from vla.core.config import ConfigError
from vla.core.types import ActionSpace
from vla.models.checkpoint import VLA_TYPE, Checkpoint

IMAGE_ENCODINGS = ("rgb8", "bgr8")
DEPTH_ENCODINGS = ("32FC1", "16UC1")
NODE_ACTION_DIM = ActionSpace.EE_DELTA.dim  # the node executes end-effector deltas (7-D)


@dataclass(frozen=True)
class InputSpec:
    """What a policy reads (see the module docstring). `cameras` None: not fixed by the policy."""

    cameras: tuple[str, ...] | None = None
    depth_cameras: tuple[str, ...] = ()
    image_size: int | None = None  # the model's square input size (px); None: any
    point_cameras: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> saved model
    use_state: bool = False
    action_dim: int | None = None
    source: str = "policy"  # for messages: "checkpoint DIR" or "policy"

    def describe(self) -> str:
        cams = "any camera" if self.cameras is None else f"cameras {list(self.cameras)}"
        size = f", {self.image_size}x{self.image_size} px" if self.image_size else ""
        depth = f", depth of {list(self.depth_cameras)}" if self.depth_cameras else ""
        state = ", state" if self.use_state else ""
        act = f", {self.action_dim}-D actions" if self.action_dim else ""
        return f"{self.source}: {cams}{size}{depth}{state}{act}"


def _spec_from(processor: Mapping[str, Any], size: int | None, action_dim: Any, source: str) -> InputSpec:
    cams = tuple(str(c) for c in processor.get("cameras") or ())
    points = {}
    if int(processor.get("obs_points", 0) or 0) > 0:
        points = {str(c["name"]): dict(c) for c in processor.get("point_cameras") or ()}
    return InputSpec(
        cameras=cams,
        depth_cameras=tuple(points),
        image_size=int(size) if size else None,
        point_cameras=points,
        use_state=bool(processor.get("use_state", False)),
        action_dim=int(action_dim) if action_dim is not None else None,
        source=source,
    )


def checkpoint_inputs(path: str | Path) -> InputSpec:
    """The inputs of a VLA checkpoint (or training run directory), from its config files alone."""
    ck = Checkpoint.open(path, model_type=VLA_TYPE)
    vla = ck.section("vla")
    size = (ck.processor_config().get("image_transform") or {}).get("size")
    return _spec_from(vla.get("processor") or {}, size, vla.get("action_dim"), f"checkpoint {ck.path}")


def policy_inputs(policy: Any) -> InputSpec:
    """The inputs of a loaded policy: a VLAPolicy's processor (found behind chunk/ensemble wrappers, which
    hold it as `.policy`); InputSpec() (no fixed cameras) for any other policy."""
    p, seen = policy, 0
    while not hasattr(p, "processor") and hasattr(p, "policy") and seen < 8:
        p, seen = p.policy, seen + 1
    proc = getattr(p, "processor", None)
    if proc is None or not hasattr(proc, "cfg"):
        return InputSpec()
    cfg = proc.cfg
    data = {
        "cameras": list(cfg.cameras),
        "use_state": cfg.use_state,
        "obs_points": getattr(cfg, "obs_points", 0),
        "point_cameras": getattr(cfg, "point_cameras", []),
    }
    size = getattr(getattr(proc, "transform", None), "size", None)
    return _spec_from(data, size, getattr(proc, "action_dim", None), type(p).__name__)


@dataclass(frozen=True)
class NodeInputs:
    """The node's inputs: the cameras it subscribes to (the first is the pivot of the time matching),
    those it also reads depth (+ CameraInfo) of, and what each message must fit."""

    cameras: tuple[CameraTopics, ...]
    depth: tuple[CameraTopics, ...]
    image_size: int | None
    point_cameras: Mapping[str, Mapping[str, Any]]
    spec: InputSpec


def resolve_inputs(cfg: Any, spec: InputSpec) -> NodeInputs:
    """The topics of every input `spec` needs, from a NodeConfig; ConfigError naming the missing topic
    (and the fix) when one is not configured, or when the actions are not the node's."""
    configured = configured_cameras(cfg)
    where = spec.describe()
    if spec.action_dim is not None and spec.action_dim != NODE_ACTION_DIM:
        names = {s.dim: s.value for s in ActionSpace}
        raise ConfigError(
            f"{where}: it predicts {spec.action_dim}-D actions "
            f"({names.get(spec.action_dim, 'unknown')}); the "
            f"node executes {NODE_ACTION_DIM}-D {ActionSpace.EE_DELTA.value} actions",
            "checkpoint",
        )
    needed = list(spec.cameras) if spec.cameras is not None else list(configured)
    if not needed:
        raise ConfigError(f"{where}: no camera to read (set cameras={{NAME: TOPIC}})", "cameras")
    listing = "{" + ", ".join(f"{c}: {t.image}" for c, t in configured.items()) + "}"
    missing = [c for c in needed if c not in configured]
    if missing:
        want = {c: configured[c].image if c in configured else default_image_topic(c) for c in needed}
        fix = "+cameras='{" + ", ".join(f"{c}: {t}" for c, t in want.items()) + "}'"
        raise ConfigError(
            f"{where}: no image topic is configured for camera(s) {missing} (configured: {listing}); "
            f"set one per camera, e.g. {fix}",
            "cameras",
        )
    depth_names = list(spec.depth_cameras) + [
        c for c in needed if cfg.use_depth and c not in spec.depth_cameras
    ]
    missing = [c for c in depth_names if c not in configured]
    if missing:
        raise ConfigError(
            f"{where}: its point clouds need depth of camera(s) {missing}, which have no topics configured "
            f"(configured: {listing}); add them to cameras (their depth: +depth_topics.NAME=TOPIC)",
            "cameras",
        )
    size = {0: spec.image_size, -1: None}.get(int(cfg.image_size), int(cfg.image_size))
    if size is not None and size < 1:
        raise ConfigError(f"image_size must be > 0, 0 (the checkpoint's) or -1 (any), got {cfg.image_size}")
    return NodeInputs(
        cameras=tuple(configured[c] for c in needed),
        depth=tuple(configured[c] for c in depth_names),
        image_size=size,
        point_cameras=dict(spec.point_cameras),
        spec=spec,
    )


# ------------------------------------------------------------------ fit of received messages
def image_problem(msg: msgs.Image, topic: str, size: int | None) -> str | None:
    """One line when a colour image does not fit: encoding other than rgb8/bgr8, or not size x size."""
    if msg.encoding not in IMAGE_ENCODINGS:
        return f"{topic}: expected encoding rgb8 or bgr8, got {msg.encoding!r}"
    if size is not None and (msg.height, msg.width) != (size, size):
        return (
            f"{topic}: expected {size}x{size} images (the policy's input size; image_size=-1 accepts any), "
            f"got {msg.height}x{msg.width}"
        )
    return None


def depth_problem(msg: msgs.Image, topic: str, model: Mapping[str, Any] | None) -> str | None:
    """One line when a depth image does not fit: encoding, or the size its saved camera model has."""
    if msg.encoding not in DEPTH_ENCODINGS:
        return f"{topic}: expected depth encoding 32FC1 or 16UC1, got {msg.encoding!r}"
    if model is not None and (msg.height, msg.width) != (int(model["height"]), int(model["width"])):
        return (
            f"{topic}: expected {int(model['height'])}x{int(model['width'])} depth (the camera model the "
            f"checkpoint's clouds were built with), got {msg.height}x{msg.width}"
        )
    return None


def camera_info_problem(msg: msgs.CameraInfo, topic: str, model: Mapping[str, Any]) -> str | None:
    """One line when a CameraInfo differs from the camera model saved with the checkpoint (size, K)."""
    want = (int(model["height"]), int(model["width"]))
    if (msg.height, msg.width) != want:
        return f"{topic}: expected a {want[0]}x{want[1]} camera, got {msg.height}x{msg.width}"
    try:
        k = convert.intrinsics_from_msg(msg)
    except ValueError as e:
        return f"{topic}: {e}"
    k0 = np.asarray(model["K"], dtype=np.float64)
    if not np.allclose(k, k0, rtol=1e-3, atol=1e-3):
        return f"{topic}: expected intrinsics K={np.round(k0, 3).tolist()}, got {np.round(k, 3).tolist()}"
    return None


def joint_names_problem(msg: msgs.JointState, topic: str, names: Sequence[str]) -> str | None:
    """One line when a JointState lacks an arm joint of the robot config (finger joints missing are the
    node's `hold_no_gripper_width`)."""
    want = list(names)
    missing = [n for n in want if n not in msg.name]
    if missing:
        return f"{topic}: expected joints {want}, got {list(msg.name)} (missing {missing})"
    return None

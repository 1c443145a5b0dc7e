"""Canonical feature names, feature specs and action conventions shared by every package.

Every producer (simulator, robot, LeRobot importer) and consumer (store, processor, policy, ROS node)
speaks these keys, so nothing renames features on the way from sim to model to robot:

    images/<camera>   uint8   [H, W, 3]   RGB
    depth/<camera>    float32 [H, W]      metres along the optical axis
    seg/<camera>      int32   [H, W]      PyBullet body unique id per pixel (-1 background), on request
    state             float32 [S]         proprioception, layout STATE_NAMES
    instruction       str                 natural-language task
    action            float32 [D]         EnvAction, layout ACTION_NAMES (D = 7)

Batched tensors add leading dims (legend: B batch, T time, D action dim, N points).

EnvAction (7-D, float32) = [dx, dy, dz, droll, dpitch, dyaw, gripper]: end-effector deltas in the robot
base frame per 10 Hz control step (metres, radians); gripper in [0, 1], 1 = open. The joint-position
action space (8-D: 7 absolute arm joint targets in radians + gripper in [0, 1]) is a separate
ActionSpace value and never mixed silently with the EE-delta one.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

IMAGE_PREFIX = "images/"
DEPTH_PREFIX = "depth/"
SEG_PREFIX = "seg/"
# Per-pixel colour names (the env's `colour_masks`): uint8 [H,W], 0 where no palette colour is drawn, k + 1
# where the k-th colour of the feature's info["palette"] is; what `vla train colour_swap` recolours.
COLOUR_PREFIX = "colours/"
STATE_KEY = "state"
INSTRUCTION_KEY = "instruction"
ACTION_KEY = "action"
# Goal-specified tasks (sim.goal_tasks): the goal scene as a world-frame point cloud, fixed for an episode.
GOAL_POINTS_KEY = "goal/points"  # float32 [N, 3] metres, robot base frame
GOAL_COLORS_KEY = "goal/colors"  # uint8 [N, 3] RGB
# Simulated episodes may also record, per frame, where the instruction's object and goal are (privileged
# simulator state, `vla collect aux=true`): an auxiliary training target only (`vla train aux_weight`),
# never a model input. float32 [6] metres, robot base frame, the names below.
AUX_KEY = "aux/scene"
AUX_NAMES: tuple[str, ...] = ("target_x", "target_y", "target_z", "goal_x", "goal_y", "goal_z")

CONTROL_HZ = 10
PHYSICS_HZ = 240

ACTION_NAMES: tuple[str, ...] = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
ACTION_DIM = len(ACTION_NAMES)
JOINT_ACTION_NAMES: tuple[str, ...] = tuple(f"q{i}" for i in range(1, 8)) + ("gripper",)

# Proprioceptive state, 15 dims, in this order: EE position (3, metres, base frame), EE orientation
# quaternion xyzw (4), gripper opening width in metres (1, measured, never estimated), the 7 arm joint
# positions (7, radians). STATE_PARTS names the parts; vla.core.state packs and unpacks them.
STATE_PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ee_position", ("ee_x", "ee_y", "ee_z")),
    ("ee_orientation", ("ee_qx", "ee_qy", "ee_qz", "ee_qw")),
    ("gripper_width", ("gripper_width",)),
    ("joint_positions", tuple(f"q{i}" for i in range(1, 8))),
)
STATE_NAMES: tuple[str, ...] = tuple(name for _, names in STATE_PARTS for name in names)
STATE_DIM = len(STATE_NAMES)


class ActionSpace(str, enum.Enum):
    """Which action convention an env, dataset or checkpoint uses."""

    EE_DELTA = "ee_delta"  # ACTION_NAMES, 7-D
    JOINT_POS = "joint_pos"  # JOINT_ACTION_NAMES, 8-D absolute joint targets + gripper

    @property
    def dim(self) -> int:
        return ACTION_DIM if self is ActionSpace.EE_DELTA else len(JOINT_ACTION_NAMES)

    @property
    def names(self) -> tuple[str, ...]:
        return ACTION_NAMES if self is ActionSpace.EE_DELTA else JOINT_ACTION_NAMES

    @classmethod
    def parse(cls, value: str | ActionSpace) -> ActionSpace:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"unknown action space {value!r}; expected one of {[m.value for m in cls]}"
            ) from None


class FeatureType(str, enum.Enum):
    """LeRobot-style explicit feature types."""

    VISUAL = "visual"
    DEPTH = "depth"
    SEGMENTATION = "segmentation"
    STATE = "state"
    ACTION = "action"
    LANGUAGE = "language"
    POINT_CLOUD = "point_cloud"


@dataclass(frozen=True)
class FeatureSpec:
    """Shape, dtype, kind and per-dimension names of one feature (per frame, no batch/time dims)."""

    type: FeatureType
    shape: tuple[int, ...]
    dtype: str
    names: tuple[str, ...] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["type"] = self.type.value
        d["shape"] = list(self.shape)
        d["names"] = list(self.names) if self.names is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpec:
        return cls(
            type=FeatureType(d["type"]),
            shape=tuple(int(s) for s in d["shape"]),
            dtype=str(d["dtype"]),
            names=tuple(d["names"]) if d.get("names") is not None else None,
            info=dict(d.get("info") or {}),
        )

    def check(self, key: str, value: np.ndarray, where: str = "") -> None:
        """Raise ValueError naming `key` (and `where`) if `value` does not match shape/dtype."""
        arr = np.asarray(value)
        loc = f" in {where}" if where else ""
        if tuple(arr.shape) != self.shape:
            raise ValueError(f"{key}{loc}: expected shape {self.shape}, got {tuple(arr.shape)}")
        if np.dtype(arr.dtype) != np.dtype(self.dtype):
            raise ValueError(f"{key}{loc}: expected dtype {self.dtype}, got {arr.dtype}")


def image_key(camera: str) -> str:
    return IMAGE_PREFIX + camera


def depth_key(camera: str) -> str:
    return DEPTH_PREFIX + camera


def seg_key(camera: str) -> str:
    return SEG_PREFIX + camera


def colour_key(camera: str) -> str:
    return COLOUR_PREFIX + camera


def check_action(action: Any, dim: int = ACTION_DIM) -> np.ndarray:
    """Validate one EnvAction; return it as a float32 array of shape [dim] (a copy, never the input)."""
    arr = np.array(action, dtype=np.float32, copy=True)
    if arr.shape != (dim,):
        raise ValueError(f"action: expected shape ({dim},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"action: expected finite values, got {arr.tolist()}")
    return arr

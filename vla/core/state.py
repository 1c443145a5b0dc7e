"""The one layout of the proprioceptive `state` vector: `pack_state` builds it, `unpack_state` names it.

Every producer packs with `pack_state` (the env's Panda in sim/robot.py, the ROS 2 node, the rosbag
importer) and every reader that needs a part unpacks with `unpack_state` (the sim robot's JointState), so
no code indexes the vector by number and training data and deployment cannot drift apart. The layout is
`vla.core.types.STATE_PARTS` (STATE_NAMES in order), float32 [15] per frame, leading dims for a batch:

    [0:3]   ee_position      metres, robot base frame (the EE link: Panda `panda_grasptarget`)
    [3:7]   ee_orientation   quaternion xyzw, base frame
    [7]     gripper_width    metres between the fingers (Panda: the sum of its two finger joints, 0..0.08)
    [8:15]  joint_positions  radians, the 7 arm joints in the robot's `joint_names` order

Missing gripper width: **the width is required; it is measured, never estimated.** The env reads it
from the simulated finger joints; the node and the bag importer read it from the finger joints of the
same sensor_msgs/JointState that carries the arm (`robot_io.convert.gripper_width`). A JointState
without both finger joints (or with a non-finite one) has no width, and nothing is put in its place:
`pack_state` refuses a missing or non-finite width, the node holds (no command; hold reason and counter
`hold_no_gripper_width` in `vla/status`) and the bag importer raises a ValueError naming the topic and
the message time. A substitute (a width from the last gripper command, or 0.0) is a value the training
data never holds in that situation, e.g. a gripper closed on a 4 cm cube reads 0.04, not 0; a policy
would act on it without any error.

    state = pack_state(ee_position=pos, ee_orientation=quat, gripper_width=w, joint_positions=q)  # [15]
    parts = unpack_state(states)   # RobotState; states [T, 15] -> parts.joint_positions [T, 7]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla.core.types import STATE_DIM, STATE_KEY, STATE_NAMES, STATE_PARTS


def _slices() -> dict[str, slice]:
    out, start = {}, 0
    for name, names in STATE_PARTS:
        out[name] = slice(start, start + len(names))
        start += len(names)
    return out


# Part name -> its columns of the state vector, from STATE_PARTS (the only place the layout is written).
STATE_SLICES: dict[str, slice] = _slices()


@dataclass(frozen=True)
class RobotState:
    """The named parts of a state vector (fresh float64 arrays; a batch [..., 15] adds the leading dims)."""

    ee_position: np.ndarray  # [..., 3] metres, base frame
    ee_orientation: np.ndarray  # [..., 4] quaternion xyzw
    gripper_width: np.ndarray  # [...] metres between the fingers
    joint_positions: np.ndarray  # [..., 7] radians


def _shape_text(width: int) -> str:
    return "[...]" if width == 1 else f"[..., {width}]"


def pack_state(
    *,
    ee_position: np.ndarray,
    ee_orientation: np.ndarray,
    gripper_width: float | np.ndarray | None,
    joint_positions: np.ndarray,
) -> np.ndarray:
    """The state vector float32 [..., 15] from its parts (shapes in `RobotState`; one frame: [3], [4], a
    scalar width, [7]). Every part must share the leading dims and be finite. A missing (None) or
    non-finite gripper width is a ValueError: the width is required (module docstring). Inputs are
    never modified; the result is a fresh array."""
    given = {
        "ee_position": ee_position,
        "ee_orientation": ee_orientation,
        "gripper_width": gripper_width,
        "joint_positions": joint_positions,
    }
    lead: tuple[int, ...] | None = None
    columns = []
    for name, names in STATE_PARTS:
        value, width = given[name], len(names)
        if value is None:
            raise ValueError(
                f"{STATE_KEY}: {name} is missing; it is required, measured and never estimated "
                f"(see vla.core.state)"
            )
        arr = np.asarray(value, dtype=np.float64)
        if width > 1 and (arr.ndim == 0 or arr.shape[-1] != width):
            raise ValueError(f"{STATE_KEY}: {name}: expected shape {_shape_text(width)}, got {arr.shape}")
        part_lead = arr.shape if width == 1 else arr.shape[:-1]
        if lead is None:
            lead = part_lead
        elif part_lead != lead:
            raise ValueError(
                f"{STATE_KEY}: {name}: expected shape {_shape_text(width)} with leading dims {lead} "
                f"(those of {STATE_PARTS[0][0]}), got {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            raise ValueError(f"{STATE_KEY}: {name}: expected finite values, got {bad} non-finite")
        columns.append(arr.reshape(*part_lead, width))
    return np.concatenate(columns, axis=-1).astype(np.float32)


def unpack_state(state: np.ndarray) -> RobotState:
    """A state vector [..., 15] (STATE_NAMES order) -> its named parts, fresh float64 arrays (the input is
    never modified). A trailing dim other than 15 is a ValueError naming the expected shape."""
    arr = np.asarray(state)
    if arr.ndim == 0 or arr.shape[-1] != STATE_DIM or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(
            f"{STATE_KEY}: expected a numeric array of shape [..., {STATE_DIM}] ({', '.join(STATE_NAMES)}), "
            f"got shape {arr.shape} dtype {arr.dtype}"
        )
    arr = arr.astype(np.float64)  # a copy: the parts never alias the caller's array
    parts = {}
    for name, cols in STATE_SLICES.items():
        part = arr[..., cols]
        parts[name] = part[..., 0].copy() if cols.stop - cols.start == 1 else part.copy()
    return RobotState(**parts)

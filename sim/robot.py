"""The Franka Panda arm in PyBullet: loading, state read-out, IK-based EE-delta control, joint control.

The Panda (pybullet_data `franka_panda/panda.urdf`) stands with its base at the world origin, so world
frame = base frame. `Panda.apply_ee_delta` integrates a clipped EE delta into a commanded EE pose (kept
within the workspace box and close to the measured pose, so a blocked arm never winds up), solves IK with
null-space limits and sends position targets; `apply_joint_targets` is the joint-position action space.
The gripper command is in [0, 1] (1 = open) and maps to the two prismatic finger joints.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet as p
import pybullet_data

from vla.core.io import atomic_write_text
from vla.core.state import pack_state

ARM_JOINTS = tuple(range(7))
FINGER_JOINTS = (9, 10)
EE_LINK = 11  # panda_grasptarget: between the finger tips
HAND_LINK = 8
FINGER_MAX = 0.04  # metres per finger
ARM_FORCES = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
FINGER_FORCE = 40.0
HOME_Q = (0.0, -0.25, 0.0, -2.3, 0.0, 2.05, math.pi / 4)
LOWER = (-2.9671, -1.8326, -2.9671, -3.0718, -2.9671, -0.0175, -2.9671)
UPPER = (2.9671, 1.8326, 2.9671, -0.0698, 2.9671, 3.7525, 2.9671)
RANGES = tuple(u - lo for u, lo in zip(UPPER, LOWER))
# EE pointing down, fingers along the world y axis at yaw 0.
DOWN_QUAT = tuple(p.getQuaternionFromEuler((math.pi, 0.0, 0.0)))
PANDA_URDF = "franka_panda/panda.urdf"
ROBOT_VISUALS = ("simple", "full")
# Link colours of the "simple" visuals: white arm, dark wrist, hand and fingers (like the real robot).
_DARK_LINKS = (6, 7, 8, 9, 10)


def panda_urdf(visuals: str = "simple") -> str:
    """Path of the Panda URDF. "full": pybullet_data's textured meshes. "simple": the same URDF with the
    convex collision meshes as visual geometry, which TinyRenderer draws about 10x faster (the textured
    meshes dominate the cost of a camera image). The simple URDF is generated once into a temp dir."""
    if visuals not in ROBOT_VISUALS:
        raise ValueError(f"unknown robot_visuals {visuals!r}; expected one of {list(ROBOT_VISUALS)}")
    src = Path(pybullet_data.getDataPath()) / PANDA_URDF
    if visuals == "full":
        return str(src)
    text = src.read_text(encoding="utf-8")
    mesh_dir = (src.parent / "meshes").as_posix()
    simple = text.replace("package://meshes/visual/", "package://meshes/collision/")
    simple = simple.replace("package://meshes/", mesh_dir + "/")
    digest = hashlib.sha1(simple.encode()).hexdigest()[:12]
    out = Path(tempfile.gettempdir()) / f"vla-sim-{digest}" / "panda_simple.urdf"
    if not out.is_file():
        atomic_write_text(out, simple)
    return str(out)


@dataclass(frozen=True)
class ControlLimits:
    """Per-control-step clipping of EE deltas and the box the commanded EE position stays within."""

    max_translation: float = 0.05  # metres per step, each axis
    max_rotation: float = 0.3  # radians per step, each axis
    workspace_low: tuple[float, float, float] = (0.2, -0.45, 0.005)
    workspace_high: tuple[float, float, float] = (0.85, 0.45, 0.6)
    max_lag: float = 0.08  # commanded EE position at most this far from the measured one


class Panda:
    """One Panda in one PyBullet client."""

    def __init__(self, client: int, visuals: str = "simple", limits: ControlLimits | None = None):
        self.client = client
        self.limits = limits or ControlLimits()
        self.uid = p.loadURDF(
            panda_urdf(visuals),
            basePosition=(0.0, 0.0, 0.0),
            useFixedBase=True,
            flags=p.URDF_USE_SELF_COLLISION_EXCLUDE_PARENT,
            physicsClientId=client,
        )
        if visuals == "simple":
            for link in range(-1, p.getNumJoints(self.uid, physicsClientId=client)):
                grey = 0.25 if link in _DARK_LINKS else 0.92
                p.changeVisualShape(self.uid, link, rgbaColor=(grey, grey, grey, 1.0), physicsClientId=client)
        for j in FINGER_JOINTS:
            p.changeDynamics(
                self.uid,
                j,
                lateralFriction=1.5,
                spinningFriction=0.003,
                frictionAnchor=True,
                physicsClientId=client,
            )
        # The two fingers move together: a gear constraint keeps them symmetric.
        c = p.createConstraint(
            self.uid,
            FINGER_JOINTS[0],
            self.uid,
            FINGER_JOINTS[1],
            jointType=p.JOINT_GEAR,
            jointAxis=(1, 0, 0),
            parentFramePosition=(0, 0, 0),
            childFramePosition=(0, 0, 0),
            physicsClientId=client,
        )
        p.changeConstraint(c, gearRatio=-1, erp=0.1, maxForce=50, physicsClientId=client)
        self.target_pos = np.zeros(3)
        self.target_quat = np.array(DOWN_QUAT)
        self.gripper_cmd = 1.0

    # ---- state ---------------------------------------------------------------------------------
    def reset(self, q: tuple[float, ...] = HOME_Q, gripper: float = 1.0) -> None:
        for j, qj in zip(ARM_JOINTS, q):
            p.resetJointState(self.uid, j, qj, 0.0, physicsClientId=self.client)
        for j in FINGER_JOINTS:
            p.resetJointState(self.uid, j, FINGER_MAX * gripper, 0.0, physicsClientId=self.client)
        self.gripper_cmd = float(gripper)
        self._send_arm(q)
        self._send_gripper(self.gripper_cmd)
        pos, quat = self.ee_pose()
        self.target_pos, self.target_quat = pos.copy(), quat.copy()

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """EE (grasp target) position [3] and quaternion xyzw [4] in the world/base frame."""
        ls = p.getLinkState(self.uid, EE_LINK, computeForwardKinematics=True, physicsClientId=self.client)
        return np.array(ls[4], dtype=np.float64), np.array(ls[5], dtype=np.float64)

    def hand_pose(self) -> tuple[np.ndarray, np.ndarray]:
        ls = p.getLinkState(self.uid, HAND_LINK, computeForwardKinematics=True, physicsClientId=self.client)
        return np.array(ls[4], dtype=np.float64), np.array(ls[5], dtype=np.float64)

    def joint_positions(self) -> np.ndarray:
        states = p.getJointStates(self.uid, ARM_JOINTS, physicsClientId=self.client)
        return np.array([s[0] for s in states], dtype=np.float64)

    def gripper_width(self) -> float:
        """Measured opening in metres: the sum of the two finger joint positions (see vla.core.state)."""
        states = p.getJointStates(self.uid, FINGER_JOINTS, physicsClientId=self.client)
        return float(states[0][0] + states[1][0])

    def state(self) -> np.ndarray:
        """Proprioception float32 [15], packed by `vla.core.state.pack_state`."""
        pos, quat = self.ee_pose()
        return pack_state(
            ee_position=pos,
            ee_orientation=quat,
            gripper_width=self.gripper_width(),
            joint_positions=self.joint_positions(),
        )

    # ---- control -------------------------------------------------------------------------------
    def apply_ee_delta(self, delta: np.ndarray, gripper: float) -> None:
        """delta [6] = (dx, dy, dz, droll, dpitch, dyaw) in the base frame; rotations about base axes."""
        lim = self.limits
        d = np.asarray(delta, dtype=np.float64)
        dpos = np.clip(d[:3], -lim.max_translation, lim.max_translation)
        drot = np.clip(d[3:6], -lim.max_rotation, lim.max_rotation)
        measured, _ = self.ee_pose()
        pos = self.target_pos + dpos
        lag = pos - measured
        n = np.linalg.norm(lag)
        if n > lim.max_lag:
            pos = measured + lag * (lim.max_lag / n)
        self.target_pos = np.clip(pos, lim.workspace_low, lim.workspace_high)
        if np.any(drot != 0.0):
            dq = p.getQuaternionFromEuler(drot.tolist())
            _, q = p.multiplyTransforms((0, 0, 0), dq, (0, 0, 0), self.target_quat.tolist())
            self.target_quat = np.array(q) / np.linalg.norm(q)
        q = p.calculateInverseKinematics(
            self.uid,
            EE_LINK,
            self.target_pos.tolist(),
            self.target_quat.tolist(),
            lowerLimits=LOWER,
            upperLimits=UPPER,
            jointRanges=RANGES,
            restPoses=HOME_Q,
            maxNumIterations=30,
            residualThreshold=1e-4,
            physicsClientId=self.client,
        )
        self._send_arm(q[:7])
        self.set_gripper(gripper)

    def apply_joint_targets(self, q: np.ndarray, gripper: float) -> None:
        qc = np.clip(np.asarray(q, dtype=np.float64), LOWER, UPPER)
        self._send_arm(qc)
        self.set_gripper(gripper)
        # Keep the EE command in sync so a later switch to EE deltas starts from here.
        self.target_pos, self.target_quat = self.ee_pose()

    def set_gripper(self, gripper: float) -> None:
        self.gripper_cmd = float(np.clip(gripper, 0.0, 1.0))
        self._send_gripper(self.gripper_cmd)

    def _send_arm(self, q) -> None:
        p.setJointMotorControlArray(
            self.uid,
            ARM_JOINTS,
            p.POSITION_CONTROL,
            targetPositions=list(q),
            forces=ARM_FORCES,
            positionGains=[0.08] * 7,
            physicsClientId=self.client,
        )

    def _send_gripper(self, g: float) -> None:
        p.setJointMotorControlArray(
            self.uid,
            FINGER_JOINTS,
            p.POSITION_CONTROL,
            targetPositions=[FINGER_MAX * g] * 2,
            forces=[FINGER_FORCE] * 2,
            physicsClientId=self.client,
        )

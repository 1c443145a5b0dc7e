"""Robot kinematics for the node: URDF joint limits, forward kinematics and IK with PyBullet (DIRECT mode).

The node turns the policy's end-effector delta into joint targets for ros2_control's
JointTrajectoryController. `Kinematics` loads the robot's URDF into a private PyBullet client (no GUI,
no physics stepping, no shared state), sets the measured joint positions, reads the EE pose, and solves
IK for `measured pose (+) delta` with null-space limits from the URDF.

    kin = Kinematics("franka_panda/panda.urdf", PANDA_JOINTS, "panda_grasptarget")
    pos, quat = kin.forward(q)                        # q [J] rad -> pos [3] m, quat xyzw [4]
    q_target = kin.ee_delta_to_joints(q, delta6)      # delta [6] (m, rad in the base frame) -> [J]
    lower, upper, velocity = urdf_joint_limits(path, PANDA_JOINTS)
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pybullet as p
import pybullet_data

SHIPPED_URDFS = Path(__file__).resolve().parent / "robots"  # URDFs of the stack (robot_io/robots/)


def resolve_urdf(urdf: str) -> Path:
    """An absolute path, or a path relative to pybullet_data (e.g. 'franka_panda/panda.urdf') or, when
    pybullet_data has no such file, to the stack's own robot_io/robots/ (e.g. 'fr3.urdf')."""
    path = Path(urdf)
    if not path.is_absolute():
        path = Path(pybullet_data.getDataPath()) / urdf
        if not path.is_file() and (SHIPPED_URDFS / urdf).is_file():
            path = SHIPPED_URDFS / urdf
    if not path.is_file():
        raise FileNotFoundError(f"robot URDF not found: {path}")
    return path


def urdf_joint_limits(urdf: str, joint_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower [J], upper [J], velocity [J]) from the URDF's <limit> tags, in `joint_names` order."""
    path = resolve_urdf(urdf)
    root = ET.parse(path).getroot()
    found: dict[str, tuple[float, float, float]] = {}
    for joint in root.iter("joint"):
        lim = joint.find("limit")
        if lim is not None and joint.get("type") in ("revolute", "prismatic"):
            found[joint.get("name", "")] = (
                float(lim.get("lower", "nan")),
                float(lim.get("upper", "nan")),
                float(lim.get("velocity", "nan")),
            )
    missing = [n for n in joint_names if n not in found]
    if missing:
        raise ValueError(f"{path}: joints {missing} have no <limit>; URDF has {sorted(found)}")
    arr = np.array([found[n] for n in joint_names], dtype=np.float64)  # [J, 3]
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{path}: incomplete <limit> (lower/upper/velocity) for {list(joint_names)}")
    return arr[:, 0], arr[:, 1], arr[:, 2]


class Kinematics:
    """FK/IK of one serial arm in its own PyBullet DIRECT client."""

    def __init__(self, urdf: str, joint_names: Sequence[str], ee_link: str, ik_iterations: int = 50):
        self.path = resolve_urdf(urdf)
        self.client = p.connect(p.DIRECT)
        self.uid = p.loadURDF(str(self.path), useFixedBase=True, physicsClientId=self.client)
        index: dict[str, int] = {}
        links: dict[str, int] = {}
        self.movable: list[int] = []  # every non-fixed joint, in PyBullet's IK order
        for j in range(p.getNumJoints(self.uid, physicsClientId=self.client)):
            info = p.getJointInfo(self.uid, j, physicsClientId=self.client)
            index[info[1].decode()] = j
            links[info[12].decode()] = j
            if info[2] != p.JOINT_FIXED:
                self.movable.append(j)
        missing = [n for n in joint_names if n not in index]
        if missing:
            raise ValueError(f"{self.path}: unknown joints {missing}")
        if ee_link not in links:
            raise ValueError(f"{self.path}: unknown EE link {ee_link!r}; links: {sorted(links)}")
        self.joint_names = tuple(joint_names)
        self.joints = [index[n] for n in joint_names]
        self.ee = links[ee_link]
        self.lower, self.upper, self.velocity = urdf_joint_limits(urdf, joint_names)
        self.ik_iterations = ik_iterations
        self._ik_slot = [self.movable.index(j) for j in self.joints]  # where our joints sit in IK output

    def _set(self, q: np.ndarray) -> None:
        for j, qj in zip(self.joints, q):
            p.resetJointState(self.uid, j, float(qj), 0.0, physicsClientId=self.client)

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """q [J] -> EE position [3] (m) and quaternion xyzw [4], base frame."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (len(self.joints),):
            raise ValueError(f"forward kinematics: expected q of shape ({len(self.joints)},), got {q.shape}")
        self._set(q)
        ls = p.getLinkState(self.uid, self.ee, computeForwardKinematics=True, physicsClientId=self.client)
        return np.array(ls[4], dtype=np.float64), np.array(ls[5], dtype=np.float64)

    def inverse(self, q_seed: np.ndarray, pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
        """Joint positions [J] reaching EE pose (pos [3], quat xyzw [4]) starting from q_seed [J]."""
        self._set(q_seed)
        ranges = (self.upper - self.lower).tolist()
        n = len(self.movable)
        lower, upper, rng, rest = [-10.0] * n, [10.0] * n, [20.0] * n, [0.0] * n
        for slot, lo, hi, r, q0 in zip(self._ik_slot, self.lower, self.upper, ranges, q_seed):
            lower[slot], upper[slot], rng[slot], rest[slot] = float(lo), float(hi), float(r), float(q0)
        sol = p.calculateInverseKinematics(
            self.uid,
            self.ee,
            np.asarray(pos, float).tolist(),
            np.asarray(quat, float).tolist(),
            lowerLimits=lower,
            upperLimits=upper,
            jointRanges=rng,
            restPoses=rest,
            maxNumIterations=self.ik_iterations,
            residualThreshold=1e-5,
            physicsClientId=self.client,
        )
        return np.array([sol[s] for s in self._ik_slot], dtype=np.float64)

    def ee_delta_to_joints(self, q: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """Apply an EE delta [6] (dx, dy, dz, droll, dpitch, dyaw; rotation about base axes) at q [J]."""
        d = np.asarray(delta, dtype=np.float64)
        pos, quat = self.forward(q)
        target_quat = quat
        if np.any(d[3:6] != 0.0):
            dq = p.getQuaternionFromEuler(d[3:6].tolist())
            _, target_quat = p.multiplyTransforms((0, 0, 0), dq, (0, 0, 0), quat.tolist())
        return self.inverse(q, pos + d[:3], np.asarray(target_quat))

    def close(self) -> None:
        if self.client is not None and p.isConnected(self.client):
            p.disconnect(self.client)
        self.client = None

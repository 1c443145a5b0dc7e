"""Pinhole cameras for the table-top scene: PyBullet matrices, OpenCV-style intrinsics/extrinsics, depth.

A `CameraSpec` says where a camera looks from (static cameras: eye/target in the world frame; the wrist
camera: a pose relative to the Panda hand). `render()` turns it into PyBullet's view/projection matrices,
renders RGB (+ z-buffer, + segmentation on request) and converts the z-buffer to metric depth along the
optical axis. `intrinsics()` / `extrinsics()` give the matching K [3,3] and world_T_cam [4,4] in the OpenCV
convention (x right, y down, z forward), so `depth_to_pointcloud` (a pure function) reprojects a depth
image into world-frame points. World frame = robot base frame (the Panda base sits at the origin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet as p

NEAR, FAR = 0.01, 5.0


@dataclass(frozen=True)
class CameraSpec:
    """One camera. Static: `eye`/`target`/`up` in the world frame. Wrist: offsets in the hand frame."""

    name: str
    fov_deg: float = 60.0
    eye: tuple[float, float, float] = (0.0, 0.0, 1.0)
    target: tuple[float, float, float] = (0.5, 0.0, 0.0)
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    mounted_on_hand: bool = False
    # Wrist mount (hand frame): camera position and the point it looks at, both in hand coordinates.
    hand_eye: tuple[float, float, float] = (0.06, 0.0, 0.05)
    hand_target: tuple[float, float, float] = (0.0, 0.0, 0.25)
    hand_up: tuple[float, float, float] = (1.0, 0.0, 0.0)


# The two default cameras: a static view of the workspace from the front-right, and a wrist camera.
DEFAULT_CAMERAS: dict[str, CameraSpec] = {
    "static": CameraSpec(name="static", fov_deg=52.0, eye=(0.9, 0.35, 0.45), target=(0.48, 0.0, 0.0)),
    "wrist": CameraSpec(name="wrist", fov_deg=75.0, mounted_on_hand=True),
}


def intrinsics(fov_deg: float, width: int, height: int) -> np.ndarray:
    """K [3,3] of a pinhole camera with vertical field of view `fov_deg` (square pixels)."""
    fy = height / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
    return np.array([[fy, 0.0, width / 2.0], [0.0, fy, height / 2.0], [0.0, 0.0, 1.0]], dtype=np.float64)


def look_at_extrinsics(eye, target, up) -> np.ndarray:
    """world_T_cam [4,4] (OpenCV axes: x right, y down, z forward) for a camera at `eye` facing `target`."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError(f"camera up vector {up.tolist()} is parallel to the viewing direction")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T


def view_matrix_from_extrinsics(world_T_cam: np.ndarray) -> list[float]:
    """PyBullet's column-major OpenGL view matrix (x right, y up, z backward) from an OpenCV world_T_cam."""
    cam_T_world = np.linalg.inv(world_T_cam)
    flip = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV camera axes -> OpenGL camera axes
    gl = flip @ cam_T_world
    return gl.T.reshape(-1).tolist()


def projection_matrix(fov_deg: float, width: int, height: int) -> list[float]:
    return p.computeProjectionMatrixFOV(fov=fov_deg, aspect=width / height, nearVal=NEAR, farVal=FAR)


def zbuffer_to_depth(zbuf: np.ndarray) -> np.ndarray:
    """PyBullet's non-linear depth buffer [H,W] in [0,1] -> metric depth along the optical axis, float32."""
    zbuf = np.asarray(zbuf, dtype=np.float64)
    return (FAR * NEAR / (FAR - (FAR - NEAR) * zbuf)).astype(np.float32)


def hand_extrinsics(spec: CameraSpec, hand_pos, hand_quat) -> np.ndarray:
    """world_T_cam [4,4] of a hand-mounted camera given the hand link's world pose."""
    R = np.array(p.getMatrixFromQuaternion(hand_quat), dtype=np.float64).reshape(3, 3)
    pos = np.asarray(hand_pos, dtype=np.float64)
    eye = pos + R @ np.asarray(spec.hand_eye)
    target = pos + R @ np.asarray(spec.hand_target)
    up = R @ np.asarray(spec.hand_up)
    return look_at_extrinsics(eye, target, up)


def render(
    client: int,
    world_T_cam: np.ndarray,
    fov_deg: float,
    width: int,
    height: int,
    renderer: int,
    segmentation: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Render one view: rgb uint8 [H,W,3], depth float32 [H,W] metres, seg int32 [H,W] body ids or None."""
    flags = 0 if segmentation else p.ER_NO_SEGMENTATION_MASK
    _, _, rgba, zbuf, seg = p.getCameraImage(
        width,
        height,
        viewMatrix=view_matrix_from_extrinsics(world_T_cam),
        projectionMatrix=projection_matrix(fov_deg, width, height),
        renderer=renderer,
        flags=flags,
        shadow=0,
        physicsClientId=client,
    )
    rgb = np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3].copy()
    depth = zbuffer_to_depth(np.asarray(zbuf).reshape(height, width))
    seg_out = None
    if segmentation:
        raw = np.asarray(seg, dtype=np.int64).reshape(height, width)
        # PyBullet packs (link + 1) << 24 into the id when link indices are requested; we keep body ids.
        seg_out = np.where(raw < 0, -1, raw & ((1 << 24) - 1)).astype(np.int32)
    return rgb, depth, seg_out


def depth_to_pointcloud(
    depth: np.ndarray,
    K: np.ndarray,
    world_T_cam: np.ndarray,
    rgb: np.ndarray | None = None,
    max_depth: float = FAR * 0.99,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Back-project depth [H,W] (metres along the optical axis) into world-frame points [N,3] float32.

    Pixels with non-finite depth or depth >= `max_depth` (the far plane: nothing there) are dropped.
    With `rgb` [H,W,3] uint8, also returns the matching colours [N,3] uint8.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth: expected shape [H, W], got {depth.shape}")
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K: expected shape (3, 3), got {K.shape}")
    world_T_cam = np.asarray(world_T_cam, dtype=np.float64)
    if world_T_cam.shape != (4, 4):
        raise ValueError(f"world_T_cam: expected shape (4, 4), got {world_T_cam.shape}")
    H, W = depth.shape
    if rgb is not None and np.asarray(rgb).shape != (H, W, 3):
        raise ValueError(f"rgb: expected shape ({H}, {W}, 3), got {np.asarray(rgb).shape}")
    v, u = np.meshgrid(np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64), indexing="ij")
    z = depth.astype(np.float64)
    valid = np.isfinite(z) & (z > 0) & (z < max_depth)
    z = z[valid]
    x = (u[valid] + 0.5 - K[0, 2]) * z / K[0, 0]  # pixel centres at +0.5
    y = (v[valid] + 0.5 - K[1, 2]) * z / K[1, 1]
    cam_pts = np.stack([x, y, z], axis=-1)  # [N,3] camera frame
    pts = (cam_pts @ world_T_cam[:3, :3].T + world_T_cam[:3, 3]).astype(np.float32)  # [N,3] world
    if rgb is None:
        return pts
    return pts, np.asarray(rgb)[valid].astype(np.uint8)

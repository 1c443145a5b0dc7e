"""The goal point cloud of a goal-specified task: the scene with every object at its goal pose, as points.

`render_goal_cloud` moves the objects to their goal poses (no physics step runs), renders depth, colour
and segmentation from the given camera views, puts every object back exactly (pose and velocity), and
turns the views into one world-frame cloud: pixels of anything but the objects and fixtures (table, robot,
background) are masked out of the depth, then the views are back-projected (sim.camera), cropped to the
workspace box and farthest-point sampled to a fixed N points, seeded (so a seed always gives the same
cloud). The sampling mirrors vla.pointcloud's pipeline (seeded pre-subsample to 4096 candidates, FPS from
a seeded start) in numpy, so the simulator and every vector-env worker stay free of torch and open3d.
The env calls it once per reset for tasks with `Task.has_goal_cloud` and exposes the result as
`goal/points` float32 [N,3] and `goal/colors` uint8 [N,3].

    pts, cols = render_goal_cloud(client, ids, layout.goal_poses, ids, views, 224, 224, renderer, 1024, seed)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pybullet as p

from sim import camera as cam

GOAL_WORKSPACE = ((0.1, -0.5, -0.02), (0.9, 0.5, 0.5))  # crop box of the goal cloud (world frame, metres)
FPS_CANDIDATES = 4096  # at most this many points enter farthest-point sampling (seeded random pre-subsample)
MIN_POINTS = 16  # fewer visible goal points is an error, never a silent near-empty cloud


@dataclass(frozen=True)
class GoalView:
    """One camera view of the goal scene: name, world_T_cam [4,4] (OpenCV axes), vertical field of view."""

    name: str
    world_T_cam: np.ndarray
    fov_deg: float


def goal_pose_quat(pose: Sequence[float]) -> tuple[tuple[float, float, float], tuple[float, ...]]:
    """(x, y, z, yaw) -> position and quaternion xyzw (upright objects)."""
    x, y, z, yaw = (float(v) for v in pose)
    return (x, y, z), tuple(p.getQuaternionFromEuler((0.0, 0.0, yaw)))


def _render_masked(
    client: int, views: Sequence[GoalView], keep: np.ndarray, width: int, height: int, renderer: int
) -> list[tuple[GoalView, np.ndarray, np.ndarray]]:
    """(view, depth [H,W] float32 with NaN outside `keep` bodies, rgb [H,W,3] uint8) per view."""
    out = []
    for v in views:
        rgb, depth, seg = cam.render(client, v.world_T_cam, v.fov_deg, width, height, renderer, True)
        depth = np.where(np.isin(seg, keep), depth, np.nan).astype(np.float32)
        out.append((v, depth, rgb))
    return out


def render_goal_cloud(
    client: int,
    object_ids: Sequence[int],
    goal_poses: Sequence[Sequence[float]],
    keep_ids: Sequence[int],
    views: Sequence[GoalView],
    width: int,
    height: int,
    renderer: int,
    num_points: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Points [N,3] float32 (world frame) and colours [N,3] uint8 of the goal scene; the world is unchanged.

    `goal_poses[i]` = (x, y, z, yaw) of body `object_ids[i]`; only pixels of `keep_ids` enter the cloud.
    Raises ValueError if the views see too few goal points (never a silent empty cloud)."""
    if len(goal_poses) != len(object_ids):
        raise ValueError(
            f"goal_poses: expected {len(object_ids)} poses (one per object), got {len(goal_poses)}"
        )
    if not views:
        raise ValueError("render_goal_cloud: expected at least one camera view")
    saved = [
        (
            p.getBasePositionAndOrientation(u, physicsClientId=client),
            p.getBaseVelocity(u, physicsClientId=client),
        )
        for u in object_ids
    ]
    try:
        for u, pose in zip(object_ids, goal_poses):
            pos, quat = goal_pose_quat(pose)
            p.resetBasePositionAndOrientation(u, pos, quat, physicsClientId=client)
        rendered = _render_masked(client, views, np.asarray(list(keep_ids)), width, height, renderer)
    finally:
        for u, ((pos, quat), (lin, ang)) in zip(object_ids, saved):
            p.resetBasePositionAndOrientation(u, pos, quat, physicsClientId=client)
            p.resetBaseVelocity(u, lin, ang, physicsClientId=client)
    return _to_cloud(rendered, width, height, num_points, seed)


def farthest_point_sample(points: np.ndarray, num: int, start: int) -> np.ndarray:
    """Indices [num] of a farthest-point sample of points [M,3] (num <= M), beginning at index `start`."""
    m = len(points)
    if not 0 < num <= m:
        raise ValueError(f"farthest_point_sample: need 0 < num <= {m}, got {num}")
    pts = points.astype(np.float32, copy=False)
    idx = np.empty(num, dtype=np.int64)
    idx[0] = start
    dist = np.sum((pts - pts[start]) ** 2, axis=1)  # [M] squared distance to the chosen set
    for k in range(1, num):
        idx[k] = int(np.argmax(dist))
        np.minimum(dist, np.sum((pts - pts[idx[k]]) ** 2, axis=1), out=dist)
    return idx


def _to_cloud(rendered, width: int, height: int, num_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Back-project, crop, and sample exactly `num_points` points (repeating some if the views saw fewer)."""
    pts_all, cols_all = [], []
    for v, depth, rgb in rendered:
        K = cam.intrinsics(v.fov_deg, width, height)
        pts, cols = cam.depth_to_pointcloud(depth, K, v.world_T_cam, rgb)  # NaN (masked) pixels dropped
        pts_all.append(pts)
        cols_all.append(cols)
    points, colors = np.concatenate(pts_all), np.concatenate(cols_all)  # [M,3], [M,3]
    lo, hi = (np.asarray(b, dtype=np.float32) for b in GOAL_WORKSPACE)
    keep = np.all((points >= lo) & (points <= hi), axis=1)
    points, colors = points[keep], colors[keep]
    if len(points) < MIN_POINTS:
        names = [v.name for v, _, _ in rendered]
        raise ValueError(
            f"goal cloud: cameras {names} see only {len(points)} object points inside the workspace box "
            f"{GOAL_WORKSPACE} (need >= {MIN_POINTS}): are the goal poses in view?"
        )
    rng = np.random.default_rng(int(seed) & 0xFFFFFFFF)
    n = int(num_points)
    if len(points) > max(FPS_CANDIDATES, n):  # a seeded pre-subsample bounds the cost of FPS
        pick = np.sort(rng.choice(len(points), max(FPS_CANDIDATES, n), replace=False))
        points, colors = points[pick], colors[pick]
    if len(points) >= n:
        idx = farthest_point_sample(points, n, int(rng.integers(len(points))))
    else:  # too few points: keep them all and repeat some (seeded)
        idx = np.concatenate([np.arange(len(points)), rng.integers(0, len(points), n - len(points))])
    return points[idx].astype(np.float32), colors[idx].astype(np.uint8)

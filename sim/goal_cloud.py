"""The goal point cloud of a goal-specified task: the scene with every object at its goal pose, as points.

`render_goal_cloud` moves the objects to their goal poses (no physics step runs), renders depth, colour
and segmentation from the given camera views, puts every object back exactly (pose and velocity), and
turns the views into one world-frame cloud: pixels of anything but the objects and fixtures (table, robot,
background) are masked out of the depth, then vla.pointcloud's pipeline back-projects, crops to the
workspace box and farthest-point samples a fixed N points, seeded (so a seed always gives the same cloud).
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


def _to_cloud(rendered, width: int, height: int, num_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # Imported here: vla.pointcloud loads torch and open3d, which only goal tasks need.
    from vla.pointcloud.geometry import CameraModel
    from vla.pointcloud.pipeline import CameraFrame, PointCloudConfig, PointCloudPipeline

    frames = [
        CameraFrame(
            CameraModel(cam.intrinsics(v.fov_deg, width, height), width, height, v.world_T_cam, v.name), d, c
        )
        for v, d, c in rendered
    ]
    cfg = PointCloudConfig(
        cameras=[v.name for v, _, _ in rendered],
        num_points=int(num_points),
        workspace_min=list(GOAL_WORKSPACE[0]),
        workspace_max=list(GOAL_WORKSPACE[1]),
        voxel_size=0.0,
        table_removal="none",  # the table is already masked out by segmentation
    )
    cloud = PointCloudPipeline(cfg).process(frames, seed=int(seed) & 0xFFFFFFFF)
    return cloud.points, cloud.colors

"""The point-cloud pipeline: depth from one or more cameras -> one fixed-size coloured cloud (base frame).

    frames  = [CameraFrame(CameraModel.from_env(env, c), obs[f"depth/{c}"], obs[f"images/{c}"]) for c in cams]
    cloud   = PointCloudPipeline(PointCloudConfig(num_points=1024)).process(frames, seed=0)
    cloud.points  # [N,3] float32, base frame (metres)     cloud.colors  # [N,3] uint8 RGB

Steps: back-project every camera (holes masked, see `geometry`), fuse, crop to the workspace box, optional
table removal (`table_removal`: "none"; "height": drop points within `table_margin` of the table plane
z = `table_height`; "ransac": fit the dominant plane with open3d's RANSAC (seeded) and drop its inliers),
voxel downsampling (open3d, colours averaged per voxel), a seeded random pre-subsample to at most
`fps_candidates` points (FPS costs O(candidates x num_points)), then farthest-point sampling to exactly
`num_points` (open3d). FPS starts from a point chosen by the seed, so the output is a deterministic function
of (input, seed). If fewer than `num_points` points survive the voxel grid, the cloud is padded by
repeating points drawn with the seed (`Cloud.num_unique` says how many are distinct); fewer than
`min_points` points after the crop is a ValueError naming the cameras and the crop box, never a silent
empty cloud. Registered as the hydra group `pointcloud` (configs/pointcloud/*.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla.core.config import register_config
from vla.core.types import DEPTH_PREFIX, IMAGE_PREFIX, SEG_PREFIX
from vla.pointcloud.geometry import DEFAULT_MAX_DEPTH, CameraModel

TABLE_REMOVAL = ("none", "height", "ransac")


@register_config("pointcloud", group="pointcloud")
@dataclass
class PointCloudConfig:
    """Options of `PointCloudPipeline` (metres, base frame)."""

    cameras: list[str] = field(default_factory=lambda: ["static"])
    num_points: int = 1024
    workspace_min: list[float] = field(default_factory=lambda: [0.1, -0.5, -0.02])
    workspace_max: list[float] = field(default_factory=lambda: [0.9, 0.5, 0.5])
    voxel_size: float = 0.005  # 0 disables voxel downsampling
    fps_candidates: int = 4096  # seeded random pre-subsample before FPS (bounds its cost); 0 = all points
    table_removal: str = "height"  # none | height | ransac
    table_height: float = 0.0
    table_margin: float = 0.006  # grazing views of the table scatter a few mm in depth
    ransac_distance: float = 0.004
    max_depth: float = DEFAULT_MAX_DEPTH
    depth_scale: float = 1.0  # 0.001 for 16UC1 millimetre depth
    min_points: int = 16


@dataclass(frozen=True)
class CameraFrame:
    """One camera's image at one instant: its model, depth [H,W], optional rgb [H,W,3] uint8 and an
    optional keep mask [H,W] bool (False pixels are dropped, e.g. the robot in a segmentation image)."""

    camera: CameraModel
    depth: np.ndarray
    rgb: np.ndarray | None = None
    keep: np.ndarray | None = None


@dataclass(frozen=True)
class Cloud:
    """A fixed-size point cloud: points [N,3] float32 (base frame), colors [N,3] uint8, distinct count."""

    points: np.ndarray
    colors: np.ndarray
    num_unique: int

    def features(self) -> np.ndarray:
        """[N,6] float32: xyz (metres) and rgb in [0, 1], the layout of a 6-channel point encoder."""
        return np.concatenate([self.points, self.colors.astype(np.float32) / 255.0], axis=1)


def frames_from_obs(
    obs: Mapping[str, Any], cameras: Mapping[str, CameraModel], drop_ids: Sequence[int] = ()
) -> list[CameraFrame]:
    """CameraFrames for `cameras` (name -> model) from an observation dict's depth/ and images/ keys;
    with `drop_ids`, pixels whose `seg/<camera>` id is one of them are dropped (e.g. the robot's body)."""
    out = []
    for name, model in cameras.items():
        dk = DEPTH_PREFIX + name
        if dk not in obs:
            raise ValueError(f"observation has no {dk!r} (depth of camera {name!r}); keys: {sorted(obs)}")
        keep = None
        if drop_ids:
            sk = SEG_PREFIX + name
            if sk not in obs:
                raise ValueError(
                    f"drop_ids needs {sk!r} (make the env with segmentation=True); keys: {sorted(obs)}"
                )
            keep = ~np.isin(np.asarray(obs[sk]), np.asarray(list(drop_ids)))
        out.append(CameraFrame(model, np.asarray(obs[dk]), obs.get(IMAGE_PREFIX + name), keep))
    return out


def frames_from_env(
    env: Any, obs: Mapping[str, Any], cameras: Sequence[str], drop_robot: bool = False
) -> list[CameraFrame]:
    """CameraFrames from a TabletopEnv's observation, with each camera's pose now (wrist included);
    `drop_robot` removes the arm's pixels (needs the env's segmentation=True)."""
    drop = (int(env.unwrapped.robot.uid),) if drop_robot else ()
    return frames_from_obs(obs, {c: CameraModel.from_env(env, c) for c in cameras}, drop)


def voxel_downsample(points: np.ndarray, colors: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    """open3d voxel grid: one point per occupied voxel (mean position and mean colour). [M,3] -> [K,3]."""
    import open3d as o3d

    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    pc.colors = o3d.utility.Vector3dVector(colors.astype(np.float64) / 255.0)
    down = pc.voxel_down_sample(float(voxel))
    pts = np.asarray(down.points, dtype=np.float32)
    cols = np.clip(np.rint(np.asarray(down.colors) * 255.0), 0, 255).astype(np.uint8)
    return pts, cols


def farthest_point_indices(points: np.ndarray, num: int, start: int = 0) -> np.ndarray:
    """Indices [num] of farthest-point samples of points [M,3] (num <= M), starting at index `start`.
    open3d's FPS starts at index 0, so the points are rolled to put `start` first."""
    import open3d as o3d

    m = len(points)
    if not 0 < num <= m:
        raise ValueError(f"farthest_point_indices: need 0 < num <= {m}, got {num}")
    order = np.roll(np.arange(m), -int(start))
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points[order].astype(np.float64)))
    # Colours carry the index through open3d (float64 holds integers < 2**53 exactly).
    pc.colors = o3d.utility.Vector3dVector(np.repeat(np.arange(m, dtype=np.float64)[:, None], 3, axis=1))
    down = pc.farthest_point_down_sample(int(num))
    return order[np.asarray(down.colors)[:, 0].astype(np.int64)]


class PointCloudPipeline:
    """Depth frames -> a `Cloud` of exactly `cfg.num_points` points. See the module docstring."""

    def __init__(self, cfg: PointCloudConfig | None = None) -> None:
        cfg = cfg or PointCloudConfig()
        if cfg.num_points <= 0:
            raise ValueError(f"pointcloud.num_points must be > 0, got {cfg.num_points}")
        if cfg.table_removal not in TABLE_REMOVAL:
            raise ValueError(
                f"pointcloud.table_removal: expected one of {TABLE_REMOVAL}, got {cfg.table_removal!r}"
            )
        lo, hi = np.asarray(cfg.workspace_min, np.float32), np.asarray(cfg.workspace_max, np.float32)
        if lo.shape != (3,) or hi.shape != (3,) or np.any(lo >= hi):
            raise ValueError(f"pointcloud workspace: need min < max (3 numbers each), got {lo} .. {hi}")
        if cfg.voxel_size < 0:
            raise ValueError(f"pointcloud.voxel_size must be >= 0, got {cfg.voxel_size}")
        self.cfg, self.lo, self.hi = cfg, lo, hi

    def fuse(self, frames: Sequence[CameraFrame]) -> tuple[np.ndarray, np.ndarray]:
        """Back-project and concatenate every frame: points [M,3] float32, colors [M,3] uint8 (base frame)."""
        if not frames:
            raise ValueError("point-cloud pipeline: no camera frames given")
        pts, cols = [], []
        for f in frames:
            p, c = f.camera.backproject(f.depth, f.rgb, self.cfg.max_depth, self.cfg.depth_scale, f.keep)
            pts.append(p)
            cols.append(c)
        return np.concatenate(pts), np.concatenate(cols)

    def crop(self, points: np.ndarray, colors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keep points inside the workspace box and off the table (per `table_removal`)."""
        keep = np.all((points >= self.lo) & (points <= self.hi), axis=1)
        if self.cfg.table_removal == "height":
            keep &= points[:, 2] > self.cfg.table_height + self.cfg.table_margin
        return points[keep], colors[keep]

    def remove_plane(
        self, points: np.ndarray, colors: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Drop the inliers of the dominant plane (open3d RANSAC with a seeded RNG)."""
        import open3d as o3d

        if len(points) < 3:
            return points, colors
        o3d.utility.random.seed(int(seed))
        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
        _, inliers = pc.segment_plane(float(self.cfg.ransac_distance), 3, 200)
        keep = np.ones(len(points), dtype=bool)
        keep[np.asarray(inliers, dtype=np.int64)] = False
        return points[keep], colors[keep]

    def process(self, frames: Sequence[CameraFrame], seed: int = 0) -> Cloud:
        """The whole pipeline; deterministic for (frames, seed)."""
        cfg = self.cfg
        points, colors = self.crop(*self.fuse(frames))
        if cfg.table_removal == "ransac":
            points, colors = self.remove_plane(points, colors, seed)
        if len(points) < cfg.min_points:
            names = [f.camera.name for f in frames]
            raise ValueError(
                f"point-cloud pipeline: only {len(points)} points of cameras {names} left inside the "
                f"workspace "
                f"box {self.lo.tolist()} .. {self.hi.tolist()} (table_removal={cfg.table_removal}); "
                f"need >= {cfg.min_points}: check the camera poses, depth units (depth_scale) and the crop"
            )
        if cfg.voxel_size > 0:
            points, colors = voxel_downsample(points, colors, cfg.voxel_size)
        rng = np.random.default_rng(seed)
        n = cfg.num_points
        if cfg.fps_candidates and len(points) > max(cfg.fps_candidates, n):
            pick = np.sort(rng.choice(len(points), max(cfg.fps_candidates, n), replace=False))
            points, colors = points[pick], colors[pick]
        if len(points) >= n:
            idx = farthest_point_indices(points, n, start=int(rng.integers(len(points))))
            unique = n
        else:  # too few distinct points: keep them all and repeat some (seeded)
            idx = np.concatenate([np.arange(len(points)), rng.integers(0, len(points), n - len(points))])
            unique = len(points)
        return Cloud(points[idx].astype(np.float32), colors[idx].astype(np.uint8), int(unique))

    def __call__(self, frames: Sequence[CameraFrame], seed: int = 0) -> Cloud:
        return self.process(frames, seed)

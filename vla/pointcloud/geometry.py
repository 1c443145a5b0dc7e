"""Camera geometry for point clouds: pinhole camera models and depth back-projection into the base frame.

A `CameraModel` holds what back-projection needs: intrinsics K [3,3], the image size it belongs to, and
the camera pose base_T_cam [4,4] in the OpenCV convention (x right, y down, z forward). Build one from the
simulator (`CameraModel.from_env(env, "static")`: `env.unwrapped.camera_intrinsics/extrinsics`, whose
world frame is the robot base frame) or from a ROS CameraInfo-style dict (`K` as 9 numbers or 3x3,
`width`, `height`) plus a 4x4 TF (`CameraModel.from_camera_info(info, base_T_cam)`).
`backproject(depth, rgb)` turns one depth image [H,W] (metres along the optical axis) into points
[N,3] float32 in the base frame and colours [N,3] uint8, masking NaN/inf/zero/negative/far holes; an image
whose size does not match the camera model is a ValueError, never a silently wrong cloud. The pixel rays
are computed once per model and cached, so back-projecting a 224x224 image costs ~1 ms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_MAX_DEPTH = 4.95  # the simulator's far plane is 5 m: depth at or beyond it is "nothing there"


def _as_pose(T: Any, where: str) -> np.ndarray:
    arr = np.asarray(T, dtype=np.float64)
    if arr.shape != (4, 4):
        raise ValueError(f"{where}: expected a 4x4 homogeneous transform, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: transform has non-finite entries")
    R = arr[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or not np.allclose(arr[3], [0, 0, 0, 1], atol=1e-9):
        raise ValueError(f"{where}: not a rigid transform (rotation not orthonormal or last row not 0 0 0 1)")
    return arr


@dataclass(frozen=True, eq=False)
class CameraModel:
    """A pinhole camera: K [3,3], image size (width, height) and pose base_T_cam [4,4] (OpenCV axes)."""

    K: np.ndarray
    width: int
    height: int
    base_T_cam: np.ndarray
    name: str = "camera"
    _rays: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        K = np.asarray(self.K, dtype=np.float64)
        if K.shape == (9,):
            K = K.reshape(3, 3)
        if K.shape != (3, 3) or not np.all(np.isfinite(K)):
            raise ValueError(f"camera {self.name!r}: K must be a finite 3x3 matrix, got shape {K.shape}")
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(
                f"camera {self.name!r}: focal lengths fx, fy must be > 0, got {K[0, 0]}, {K[1, 1]}"
            )
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(
                f"camera {self.name!r}: width/height must be > 0, got {self.width}x{self.height}"
            )
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "base_T_cam", _as_pose(self.base_T_cam, f"camera {self.name!r} base_T_cam"))

    # ---- construction ---------------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: Any, camera: str) -> CameraModel:
        """The current model of `camera` in a TabletopEnv (its world frame is the robot base frame)."""
        u = env.unwrapped
        return cls(u.camera_intrinsics(camera), u.width, u.height, u.camera_extrinsics(camera), camera)

    @classmethod
    def from_camera_info(cls, info: Mapping[str, Any], base_T_cam: Any, name: str = "camera") -> CameraModel:
        """From a ROS sensor_msgs/CameraInfo-style mapping (keys `K` or `k`, `width`, `height`) + a TF."""
        k = info.get("K", info.get("k"))
        missing = [
            key
            for key, v in (("K", k), ("width", info.get("width")), ("height", info.get("height")))
            if v is None
        ]
        if missing:
            raise ValueError(
                f"camera info {name!r}: missing keys {missing}; expected K (9 numbers), width, height"
            )
        K = np.asarray(k, dtype=np.float64)
        if K.size != 9:
            raise ValueError(f"camera info {name!r}: K must have 9 entries (row-major 3x3), got {K.size}")
        return cls(K.reshape(3, 3), int(info["width"]), int(info["height"]), base_T_cam, name)

    def with_pose(self, base_T_cam: Any) -> CameraModel:
        """The same intrinsics at another pose (e.g. a wrist camera after the hand moved)."""
        return CameraModel(self.K, self.width, self.height, base_T_cam, self.name)

    # ---- back-projection ------------------------------------------------------------------------
    def rays(self) -> np.ndarray:
        """Camera-frame rays [H*W, 3] float32 with z = 1 through the pixel centres (cached)."""
        if "rays" not in self._rays:
            v, u = np.meshgrid(np.arange(self.height), np.arange(self.width), indexing="ij")
            x = (u.reshape(-1) + 0.5 - self.K[0, 2]) / self.K[0, 0]
            y = (v.reshape(-1) + 0.5 - self.K[1, 2]) / self.K[1, 1]
            self._rays["rays"] = np.stack([x, y, np.ones_like(x)], axis=-1).astype(np.float32)  # [H*W,3]
        return self._rays["rays"]

    def check_image(self, depth: np.ndarray, rgb: np.ndarray | None = None) -> None:
        """ValueError unless depth is [H,W] (and rgb [H,W,3]) at this camera's size."""
        if depth.ndim != 2 or depth.shape != (self.height, self.width):
            raise ValueError(
                f"camera {self.name!r}: depth has shape {depth.shape}, but the camera info says "
                f"[height={self.height}, width={self.width}]"
            )
        if rgb is not None and rgb.shape != (self.height, self.width, 3):
            raise ValueError(
                f"camera {self.name!r}: rgb has shape {rgb.shape}, expected ({self.height}, {self.width}, 3)"
            )

    def backproject(
        self,
        depth: np.ndarray,
        rgb: np.ndarray | None = None,
        max_depth: float = DEFAULT_MAX_DEPTH,
        depth_scale: float = 1.0,
        keep: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """depth [H,W] (x `depth_scale` -> metres; 1e-3 for 16UC1 millimetres) -> base-frame points [N,3]
        float32 and colours [N,3] uint8 (grey 128 without rgb). NaN, inf, <= 0 and >= max_depth are holes;
        `keep` [H,W] bool (e.g. "not the robot" from a segmentation mask) drops the False pixels too."""
        depth = np.asarray(depth)
        rgb_arr = None if rgb is None else np.asarray(rgb)
        self.check_image(depth, rgb_arr)
        z = depth.reshape(-1).astype(np.float32) * np.float32(depth_scale)  # [H*W]
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(z) & (z > 0) & (z < max_depth)
        if keep is not None:
            keep = np.asarray(keep)
            if keep.shape != depth.shape or keep.dtype != np.bool_:
                raise ValueError(
                    f"camera {self.name!r}: keep mask must be bool {depth.shape}, "
                    f"got {keep.dtype} {keep.shape}"
                )
            valid &= keep.reshape(-1)
        idx = np.flatnonzero(valid)
        cam = self.rays()[idx] * z[idx, None]  # [N,3] camera frame
        R = self.base_T_cam[:3, :3].astype(np.float32)
        t = self.base_T_cam[:3, 3].astype(np.float32)
        pts = cam @ R.T + t  # [N,3] base frame
        if rgb_arr is None:
            cols = np.full((len(idx), 3), 128, dtype=np.uint8)
        else:
            cols = rgb_arr.reshape(-1, 3)[idx].astype(np.uint8)
        return pts.astype(np.float32, copy=False), cols

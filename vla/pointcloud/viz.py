"""Point clouds to pictures: PNG panels side by side (matplotlib 3-D scatter) and binary PLY files.

    render_clouds_png("goal.png", {"initial": c0, "true goal": g, "imagined goal": g_hat},
                      title="stack the red cube on the blue cube")
    write_ply("goal.ply", points, colors)

Each panel is one cloud (points [N,3] metres, optional colours [N,3] uint8 or floats in [0, 1]; a `Cloud`
or a (points, colors) pair or bare points) drawn from the same viewpoint with the same axis limits, so
panels compare directly; `views` > 1 adds rows seen from other azimuths. Files are written atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vla.core.io import atomic_write_bytes

VIEWS = ((25.0, -60.0), (60.0, 0.0), (10.0, -120.0))  # (elevation, azimuth) in degrees


def _split(cloud: Any, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Cloud | (points, colors) | points -> points [N,3] float, colours [N,3] floats in [0, 1] or None."""
    if hasattr(cloud, "points"):
        pts, cols = cloud.points, getattr(cloud, "colors", None)
    elif isinstance(cloud, tuple) and len(cloud) == 2:
        pts, cols = cloud
    else:
        pts, cols = cloud, None
    pts = np.asarray(pts, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] < 3 or len(pts) == 0:
        raise ValueError(f"render: cloud {name!r} must be points [N,3] with N > 0, got shape {pts.shape}")
    if pts.shape[1] >= 6 and cols is None:  # xyz + rgb in [0, 1]
        cols = pts[:, 3:6]
    pts = pts[:, :3]
    if cols is not None:
        cols = np.asarray(cols)
        if cols.shape != pts.shape:
            raise ValueError(f"render: cloud {name!r} colours have shape {cols.shape}, points {pts.shape}")
        cols = (
            cols.astype(np.float64) / 255.0
            if cols.dtype == np.uint8
            else np.clip(cols.astype(np.float64), 0, 1)
        )
    return pts, cols


def render_clouds_png(
    path: str | os.PathLike,
    clouds: Mapping[str, Any],
    title: str = "",
    views: int = 1,
    point_size: float = 4.0,
    panel_inches: float = 3.2,
    dpi: int = 100,
) -> Path:
    """Draw every cloud as a panel (columns) for `views` viewpoints (rows); write a PNG atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not clouds:
        raise ValueError("render_clouds_png: no clouds given")
    if not 1 <= views <= len(VIEWS):
        raise ValueError(f"render_clouds_png: views must be in [1, {len(VIEWS)}], got {views}")
    parts = {name: _split(c, name) for name, c in clouds.items()}
    allpts = np.concatenate([p for p, _ in parts.values()])
    lo, hi = allpts.min(0), allpts.max(0)
    mid, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-3)
    fig = plt.figure(figsize=(panel_inches * len(parts), panel_inches * views + (0.4 if title else 0)))
    for r, (elev, azim) in enumerate(VIEWS[:views]):
        for c, (name, (pts, cols)) in enumerate(parts.items()):
            ax = fig.add_subplot(views, len(parts), r * len(parts) + c + 1, projection="3d")
            ax.scatter(
                pts[:, 0],
                pts[:, 1],
                pts[:, 2],
                c=cols if cols is not None else pts[:, 2],
                s=point_size,
                depthshade=False,
                linewidths=0,
            )
            for setter, m in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), mid):
                setter(m - half, m + half)
            ax.set_box_aspect((1, 1, 1))
            ax.view_init(elev=elev, azim=azim)
            ax.set_xlabel("x")
            ax.set_ylabel("y")
            ax.set_zlabel("z")
            ax.tick_params(labelsize=6)
            if r == 0:
                ax.set_title(f"{name} ({len(pts)} pts)", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def write_ply(path: str | os.PathLike, points: np.ndarray, colors: np.ndarray | None = None) -> Path:
    """A binary little-endian PLY of points [N,3] (float32) with optional colours [N,3] uint8, atomically."""
    pts = np.asarray(points, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"write_ply {path}: points must be [N,3], got {pts.shape}")
    fields: Sequence[tuple[str, str]] = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(pts)}"]
    header += ["property float x", "property float y", "property float z"]
    if colors is not None:
        cols = np.asarray(colors)
        if cols.shape != pts.shape:
            raise ValueError(
                f"write_ply {path}: colors must be [N,3] like points {pts.shape}, got {cols.shape}"
            )
        if cols.dtype != np.uint8:
            cols = np.clip(np.rint(cols.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
        fields = [*fields, ("red", "u1"), ("green", "u1"), ("blue", "u1")]
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header.append("end_header")
    rec = np.empty(len(pts), dtype=list(fields))
    rec["x"], rec["y"], rec["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    if colors is not None:
        rec["red"], rec["green"], rec["blue"] = cols[:, 0], cols[:, 1], cols[:, 2]
    return atomic_write_bytes(path, ("\n".join(header) + "\n").encode("ascii") + rec.tobytes())

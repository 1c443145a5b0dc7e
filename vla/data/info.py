"""`vla dataset info PATH`: what an episode store holds (features, episodes, tasks, splits, size, stats).

vla dataset info outputs/demos/pick.zarr
vla dataset info outputs/demos/pick.zarr stats=true      # also per-dim action/state statistics
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from vla.data.store import EpisodeStore
from vla.core.types import FeatureType


def describe(path: str, stats: bool = False) -> dict[str, Any]:
    """A JSON-friendly summary of the store at `path`."""
    s = EpisodeStore.open(path)
    metas = [s.episode_meta(i) for i in range(s.num_episodes)]
    lengths = np.array([m["length"] for m in metas]) if metas else np.zeros(0)
    out: dict[str, Any] = {
        "path": str(s.path),
        "fps": s.fps,
        "episodes": s.num_episodes,
        "frames": s.num_frames,
        "bytes": s.nbytes(),
        "length": {"min": int(lengths.min()), "mean": float(lengths.mean()), "max": int(lengths.max())}
        if len(lengths)
        else {},
        "features": {
            k: {"type": f.type.value, "shape": list(f.shape), "dtype": f.dtype} for k, f in s.features.items()
        },
        "meta": {k: v for k, v in s.meta.items() if k in ("source", "action_space", "robot")},
        "tasks": dict(Counter(str(m.get("task", "")) for m in metas)),
        "splits": dict(Counter(str(m.get("split", "")) for m in metas)),
        "success": dict(Counter(str(m.get("success")) for m in metas)),
        "instructions": sorted({str(m.get("instruction", "")) for m in metas})[:10],
    }
    if stats and s.num_frames:
        out["stats"] = {
            k: {n: np.round(v, 4).tolist() for n, v in s.stats(k).items() if n != "count"}
            for k, f in s.features.items()
            if f.type in (FeatureType.ACTION, FeatureType.STATE) and len(f.shape) <= 1
        }
    return out


def format_info(d: dict[str, Any]) -> str:
    lines = [
        f"{d['path']}: {d['episodes']} episodes, {d['frames']} frames at {d['fps']:g} fps, "
        f"{d['bytes'] / 1e6:.1f} MB",
    ]
    if d["length"]:
        lines.append(
            f"episode length: min {d['length']['min']}, mean {d['length']['mean']:.1f}, "
            f"max {d['length']['max']}"
        )
    lines.append("features:")
    for k, f in d["features"].items():
        lines.append(f"  {k:<24} {f['type']:<12} {f['dtype']:<8} {f['shape']}")
    for name in ("meta", "tasks", "splits", "success"):
        if d[name]:
            lines.append(f"{name}: " + ", ".join(f"{k}={v}" for k, v in d[name].items()))
    if d["instructions"]:
        lines.append("instructions (up to 10): " + " | ".join(d["instructions"]))
    for k, st in d.get("stats", {}).items():
        lines.append(f"stats {k}:")
        lines += [f"  {n:<5} {v}" for n, v in st.items()]
    return "\n".join(lines)

"""`vla import lerobot PATH`: a LeRobot v2.x / v3.0 dataset into an episode store.

Features are renamed to our keys by a mapping (LeRobot name -> our key, "" drops a feature) on top of
the default rules: `observation.state` -> `state`, `action` -> `action`, `observation.images.<cam>` ->
`images/<cam>`, `observation.image` -> `images/image`, other numeric `observation.<a>.<b>` -> `<a>/<b>`
(the inverse of `vla export lerobot`); anything else is skipped unless mapped. Videos
(AV1, H.264, ...) are decoded with PyAV, optionally resized to `image_size`. Before anything is written,
every selected episode's parquet and video files are checked and all missing ones reported in one error;
each episode is then appended atomically, and a parquet/video frame-count mismatch stops the import with
an error naming file, episode and key (episodes already imported stay intact).

    vla import lerobot ../shared/data/lerobot_g1_v21 out=outputs/g1.zarr episodes=[1,2] image_size=[240,320]
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla.core.config import register_config
from vla.core.types import ACTION_KEY, IMAGE_PREFIX, STATE_KEY, FeatureSpec, FeatureType
from vla.data.lerobot_format import LeRobotSource, feature_names
from vla.data.store import EpisodeStore
from vla.data.windows import resize_frames


@register_config("import_lerobot")
@dataclass
class ImportLeRobotConfig:
    path: str = ""  # the LeRobot dataset directory (positional)
    out: str = "outputs/lerobot.zarr"
    episodes: list[int] | None = None  # LeRobot episode indices; None = all
    mapping: dict[str, str] = field(default_factory=dict)  # LeRobot feature -> our key ("" drops it)
    image_size: list[int] | None = None  # [H, W] resize while decoding; None keeps the source size
    task: str | None = None  # our `task` label for every episode; None = the episode's instruction
    split: str = "train"
    image_compression: str = "zstd"  # real camera frames: zstd stores them ~1.6x smaller than lz4
    overwrite: bool = False


def default_key(name: str, spec: Mapping[str, Any]) -> str | None:
    """Our key for a LeRobot feature by the default rules, or None to skip it."""
    if name == "observation.state":
        return STATE_KEY
    if name == "action":
        return ACTION_KEY
    if name.startswith("observation.images.") and spec.get("dtype") in ("video", "image"):
        return IMAGE_PREFIX + name[len("observation.images.") :]
    if name == "observation.image" and spec.get("dtype") in ("video", "image"):
        return IMAGE_PREFIX + "image"
    if name.startswith("observation.") and spec.get("dtype") not in ("video", "image", "string", "str"):
        return name[len("observation.") :].replace(".", "/")
    return None


def resolve_mapping(source: LeRobotSource, mapping: Mapping[str, str]) -> dict[str, str]:
    """LeRobot feature -> our key for every imported feature (defaults, then `mapping` overrides)."""
    unknown = sorted(set(mapping) - set(source.features))
    if unknown:
        raise ValueError(
            f"{source.root}: mapping names features {unknown} not in meta/info.json {sorted(source.features)}"
        )
    out: dict[str, str] = {}
    for name, spec in source.features.items():
        key = mapping[name] if name in mapping else default_key(name, spec)
        if key:
            out[name] = key
    dup = sorted({k for k in out.values() if list(out.values()).count(k) > 1})
    if dup:
        raise ValueError(f"{source.root}: several LeRobot features map to the same key(s) {dup}: {out}")
    if not out:
        raise ValueError(
            f"{source.root}: no feature to import (features {sorted(source.features)}); set mapping="
        )
    return out


def store_features(
    source: LeRobotSource, mapping: Mapping[str, str], image_size: Sequence[int] | None
) -> dict[str, FeatureSpec]:
    feats = {}
    for name, key in mapping.items():
        spec = source.features[name]
        dtype = spec.get("dtype")
        info = {"lerobot_key": name}
        if dtype in ("video", "image"):
            shape = tuple(int(s) for s in spec["shape"])
            if len(shape) != 3 or 3 not in (shape[0], shape[2]):
                raise ValueError(
                    f"{source.root}: feature {name!r}: expected an RGB image shape, got {list(shape)}"
                )
            h, w = (shape[0], shape[1]) if shape[2] == 3 else (shape[1], shape[2])
            if image_size is not None:
                h, w = int(image_size[0]), int(image_size[1])
            feats[key] = FeatureSpec(FeatureType.VISUAL, (h, w, 3), "uint8", None, info)
            continue
        if dtype in ("string", "str"):
            raise ValueError(f"{source.root}: feature {name!r} is text; instructions come from the tasks")
        shape = tuple(int(s) for s in spec.get("shape", [1]))
        kind = FeatureType.ACTION if key == ACTION_KEY else FeatureType.STATE
        feats[key] = FeatureSpec(kind, shape, str(np.dtype(dtype)), feature_names(spec), info)
    return feats


def import_lerobot(cfg: ImportLeRobotConfig, resolved: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run the import; return a summary dict."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    source = LeRobotSource(cfg.path)
    mapping = resolve_mapping(source, cfg.mapping)
    feats = store_features(source, mapping, cfg.image_size)
    wanted = source.episode_indices if cfg.episodes is None else [int(e) for e in cfg.episodes]
    refs = [source.episode(e) for e in wanted]
    video_keys = [n for n in mapping if n in source.video_keys]
    missing = source.missing_files(refs, video_keys)
    if missing:
        shown = "\n  ".join(missing[:20]) + (
            f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        )
        raise FileNotFoundError(
            f"{source.root}: {len(missing)} file(s) missing for the selected episodes:\n  {shown}"
        )
    meta = {
        "source": "lerobot",
        "action_space": f"lerobot:{source.info.get('robot_type', 'unknown')}",
        "lerobot": {
            "path": str(Path(cfg.path).resolve()),
            "codebase_version": source.version,
            "robot_type": source.info.get("robot_type"),
            "mapping": mapping,
        },
        "import": dict(resolved or {}),
    }
    store = EpisodeStore.create(
        cfg.out,
        feats,
        fps=source.fps,
        meta=meta,
        overwrite=cfg.overwrite,
        image_compression=cfg.image_compression,
    )
    size = tuple(int(s) for s in cfg.image_size) if cfg.image_size is not None else None
    columns = [n for n in mapping if n not in source.video_keys]
    frames_total = 0
    try:
        for ref in tqdm(refs, desc="import lerobot", unit="ep"):
            cols = source.read_columns(ref, columns)
            frames = {mapping[n]: cols[n] for n in columns}
            for n in video_keys:
                frames[mapping[n]] = source.read_video(ref, n, size=size)
            for n in columns:  # parquet-embedded images at another size
                key = mapping[n]
                if feats[key].type is FeatureType.VISUAL and frames[key].shape[1:] != feats[key].shape:
                    frames[key] = _resize(frames[key], feats[key].shape[:2])
            task_idx = int(cols["task_index"].reshape(-1)[0]) if "task_index" in cols else None
            instruction = (
                ref.tasks[0] if ref.tasks else source.tasks.get(task_idx, "") if task_idx is not None else ""
            )
            ep_meta = {
                "instruction": instruction,
                "task": cfg.task or instruction,
                "split": cfg.split,
                "success": _recorded_success(source, ref),
                "lerobot_episode_index": ref.index,
            }
            store.append_episode(frames, ep_meta)
            frames_total += ref.length
    finally:
        store.close()  # release the writer lock
    return {
        "out": str(store.path),
        "episodes": store.num_episodes,
        "frames": frames_total,
        "features": {n: mapping[n] for n in mapping},
        "skipped": sorted(
            set(source.features)
            - set(mapping)
            - {"timestamp", "frame_index", "episode_index", "index", "task_index"}
        ),
        "bytes": store.nbytes(),
        "wall_s": time.perf_counter() - t0,
    }


def _resize(frames: np.ndarray, hw: Sequence[int]) -> np.ndarray:
    import torch

    return resize_frames(torch.from_numpy(frames), hw, FeatureType.VISUAL).numpy()


def _recorded_success(source: Any, ref: Any) -> bool | None:
    """An episode's outcome as the dataset records it: whether LeRobot's per-frame `next.success` column
    (the sim datasets' convention, e.g. PushT) is ever true; None (unknown) when the dataset has no such
    column. Never assumed: `select(success=True)` then leaves unknown episodes out."""
    if "next.success" not in source.features:
        return None
    return bool(np.asarray(source.read_columns(ref, ["next.success"])["next.success"]).astype(bool).any())

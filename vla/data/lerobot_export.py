"""`vla export lerobot STORE out=DIR`: an episode store as a LeRobot v3.0 dataset, for publishing.

Writes (atomically: the directory appears complete or not at all)

    meta/info.json                                    codebase_version v3.0, fps, features, path templates
    meta/stats.json                                   per-feature mean/std/min/max/q01/q99/count
    meta/tasks.parquet                                task (pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet          one row per episode: lengths, offsets, tasks, stats
    data/chunk-XXX/file-YYY.parquet                   frames of many episodes (rolled over by size)
    videos/<key>/chunk-XXX/file-YYY.mp4               each camera's frames, episodes back to back

Keys map to LeRobot names by `state` -> `observation.state`, `action` -> `action`, `images/<cam>` ->
`observation.images.<cam>` (H.264 video by default), other low-dim keys -> `observation.<key>`; `mapping`
overrides, "" drops a key. Depth and segmentation frames are not exported (LeRobot video is lossy 8-bit).
Per-frame scalars (shape [] or [1]) become LeRobot shape-[1] scalar columns; they import back as shape [1].
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vla.core.config import compose, register_config, split_positionals, to_dataclass
from vla.core.normalizer import StatsAccumulator
from vla.data.store import EpisodeStore
from vla.data.video import VideoEncoder
from vla.core.types import ACTION_KEY, IMAGE_PREFIX, STATE_KEY, FeatureType
from vla.core.io import atomic_directory

DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"


@register_config("export_lerobot")
@dataclass
class ExportLeRobotConfig:
    path: str = ""  # the episode store (positional)
    out: str = "outputs/lerobot_v3"
    mapping: dict[str, str] = field(default_factory=dict)  # our key -> LeRobot name ("" drops it)
    episodes: list[int] | None = None  # store episode indices; None = all
    codec: str = "libx264"  # libx264 (H.264), libsvtav1 (AV1), mpeg4
    crf: int = 18
    robot_type: str = "franka_panda"
    chunks_size: int = 1000
    data_file_mb: float = 100.0
    video_file_mb: float = 500.0
    overwrite: bool = False


def default_name(key: str) -> str:
    if key == STATE_KEY:
        return "observation.state"
    if key == ACTION_KEY:
        return "action"
    if key.startswith(IMAGE_PREFIX):
        return "observation.images." + key[len(IMAGE_PREFIX) :]
    return "observation." + key.replace("/", ".")


def _arrow_column(values: np.ndarray) -> pa.Array:
    """[N] -> scalar column; [N, D] -> fixed_size_list<D>; deeper shapes nest."""
    if values.ndim == 1:
        return pa.array(values)
    flat = pa.array(values.reshape(-1))
    for d in reversed(values.shape[1:]):
        flat = pa.FixedSizeListArray.from_arrays(flat, int(d))
    return flat


def _stats_lists(result: Mapping[str, np.ndarray]) -> dict[str, list]:
    return {k: np.asarray(v).tolist() for k, v in result.items()}


def _image_stats(frames: np.ndarray) -> dict[str, list]:
    """Per-channel stats in [0, 1] with LeRobot's image stat shape [3, 1, 1], from a pixel subsample."""
    px = frames[::4, ::4, ::4].reshape(-1, 3).astype(np.float64) / 255.0  # [N, 3]
    r = StatsAccumulator(3).update(px).result()
    out = {k: np.asarray(v).reshape(3, 1, 1).tolist() for k, v in r.items() if k != "count"}
    out["count"] = [int(frames.shape[0])]
    return out


class _Rolling:
    """Chunk/file numbering for a family of files rolled over by size."""

    def __init__(self, chunks_size: int) -> None:
        self.n, self.chunks_size = 0, chunks_size

    @property
    def chunk_file(self) -> tuple[int, int]:
        return self.n // self.chunks_size, self.n % self.chunks_size


def export_lerobot(cfg: ExportLeRobotConfig) -> dict[str, Any]:
    from tqdm import tqdm

    t0 = time.perf_counter()
    store = EpisodeStore.open(cfg.path)
    ids = list(range(store.num_episodes)) if cfg.episodes is None else [int(i) for i in cfg.episodes]
    if not ids:
        raise ValueError(f"{store.path}: no episodes to export")
    unknown = sorted(set(cfg.mapping) - set(store.features))
    if unknown:
        raise ValueError(
            f"{store.path}: mapping names keys {unknown} that are not features {sorted(store.features)}"
        )
    names: dict[str, str] = {}
    skipped = []
    for key, spec in store.features.items():
        name = cfg.mapping.get(key, default_name(key))
        if not name or spec.type in (FeatureType.DEPTH, FeatureType.SEGMENTATION, FeatureType.POINT_CLOUD):
            skipped.append(key)
            continue
        names[key] = name
    video_keys = [k for k in names if store.features[k].type is FeatureType.VISUAL]
    table_keys = [k for k in names if k not in video_keys]
    fps = store.fps
    tasks: dict[str, int] = {}
    episode_rows: list[dict[str, Any]] = []
    totals = {k: StatsAccumulator(max(1, int(np.prod(store.features[k].shape)))) for k in table_keys}
    image_stats: dict[str, list[dict[str, list]]] = {k: [] for k in video_keys}
    codecs: dict[str, str] = {}

    with atomic_directory(cfg.out, overwrite=cfg.overwrite) as root:
        data_files, video_files = (
            _Rolling(cfg.chunks_size),
            {k: _Rolling(cfg.chunks_size) for k in video_keys},
        )
        pending: list[pa.Table] = []
        pending_bytes = 0
        encoders: dict[str, VideoEncoder | None] = {k: None for k in video_keys}
        global_index = 0

        def flush_data() -> None:
            nonlocal pending, pending_bytes
            if pending:
                c, f = data_files.chunk_file
                path = root / DATA_PATH.format(chunk_index=c, file_index=f)
                path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(pa.concat_tables(pending), path)
                data_files.n += 1
            pending, pending_bytes = [], 0

        for new_idx, i in enumerate(tqdm(ids, desc="export lerobot", unit="ep")):
            ep = store.episode(i)
            meta = store.episode_meta(i)
            n = int(meta["length"])
            task = str(meta.get("instruction") or meta.get("task") or "")
            task_index = tasks.setdefault(task, len(tasks))
            cols: dict[str, pa.Array] = {}
            row: dict[str, Any] = {"episode_index": new_idx, "tasks": [task], "length": n}
            for k in table_keys:
                values = ep[k].astype(np.float32) if ep[k].dtype == np.float16 else ep[k]  # [T, ...]
                scalar = store.features[k].shape in ((), (1,))  # LeRobot: shape [1] <-> a scalar column
                cols[names[k]] = _arrow_column(values.reshape(n) if scalar else values)
                flat = values.reshape(n, -1).astype(np.float64)
                totals[k].update(flat)
                for s, v in _stats_lists(StatsAccumulator(flat.shape[1]).update(flat).result()).items():
                    row[f"stats/{names[k]}/{s}"] = v
            frame = np.arange(n, dtype=np.int64)
            cols["timestamp"] = pa.array((frame / fps).astype(np.float32))
            cols["frame_index"] = pa.array(frame)
            cols["episode_index"] = pa.array(np.full(n, new_idx, dtype=np.int64))
            cols["index"] = pa.array(global_index + frame)
            cols["task_index"] = pa.array(np.full(n, task_index, dtype=np.int64))
            table = pa.table(cols)
            c, f = data_files.chunk_file
            row.update({"data/chunk_index": c, "data/file_index": f})
            row.update({"dataset_from_index": global_index, "dataset_to_index": global_index + n})
            pending.append(table)
            pending_bytes += table.nbytes
            global_index += n
            for k in video_keys:
                enc = encoders[k]
                h, w, _ = store.features[k].shape
                if enc is None:
                    vc, vf = video_files[k].chunk_file
                    path = root / VIDEO_PATH.format(video_key=names[k], chunk_index=vc, file_index=vf)
                    # a short GOP: cheap seeks into multi-episode files
                    enc = VideoEncoder(path, fps, h, w, codec=cfg.codec, crf=cfg.crf, gop=2)
                    encoders[k] = enc
                    codecs[k] = _codec_name(enc.codec)
                vc, vf = video_files[k].chunk_file
                start = enc.frames
                for img in ep[k]:
                    enc.write(img)
                row.update(
                    {
                        f"videos/{names[k]}/chunk_index": vc,
                        f"videos/{names[k]}/file_index": vf,
                        f"videos/{names[k]}/from_timestamp": start / fps,
                        f"videos/{names[k]}/to_timestamp": enc.frames / fps,
                    }
                )
                st = _image_stats(ep[k])
                image_stats[k].append(st)
                for s, v in st.items():
                    row[f"stats/{names[k]}/{s}"] = np.asarray(v).reshape(-1).tolist()
                if enc.bytes_out > cfg.video_file_mb * 1e6:  # roll over to a new file
                    enc.close()
                    encoders[k] = None
                    video_files[k].n += 1
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            episode_rows.append(row)
            if pending_bytes > cfg.data_file_mb * 1e6:
                flush_data()
        flush_data()
        for k, enc in encoders.items():
            if enc is not None:
                enc.close()
                video_files[k].n += 1

        (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(episode_rows), root / EPISODES_PATH)
        _write_tasks(root / "meta" / "tasks.parquet", tasks)
        stats = {names[k]: _stats_lists(acc.result()) for k, acc in totals.items() if acc.count}
        for k, per_ep in image_stats.items():
            stats[names[k]] = _merge_image_stats(per_ep)
        (root / "meta" / "stats.json").write_text(json.dumps(stats, indent=2))
        info = _info(store, names, codecs, cfg, len(ids), global_index, len(tasks))
        (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    out = Path(cfg.out)
    return {
        "out": str(out),
        "episodes": len(ids),
        "frames": global_index,
        "tasks": len(tasks),
        "features": names,
        "skipped": skipped,
        "bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file()),
        "wall_s": time.perf_counter() - t0,
    }


def _merge_image_stats(per_ep: list[dict[str, list]]) -> dict[str, list]:
    counts = np.array([s["count"][0] for s in per_ep], dtype=np.float64)
    w = counts / counts.sum()
    mean = sum(wi * np.asarray(s["mean"]) for wi, s in zip(w, per_ep))
    var = sum(
        wi * (np.asarray(s["std"]) ** 2 + (np.asarray(s["mean"]) - mean) ** 2) for wi, s in zip(w, per_ep)
    )
    out = {
        "mean": mean.tolist(),
        "std": np.sqrt(var).tolist(),
        "min": np.min([s["min"] for s in per_ep], axis=0).tolist(),
        "max": np.max([s["max"] for s in per_ep], axis=0).tolist(),
        "q01": np.min([s["q01"] for s in per_ep], axis=0).tolist(),  # conservative: widest episode bounds
        "q99": np.max([s["q99"] for s in per_ep], axis=0).tolist(),
        "count": [int(counts.sum())],
    }
    return out


def _write_tasks(path: Path, tasks: Mapping[str, int]) -> None:
    """tasks.parquet as pandas would write it: the task text is the (named) index, task_index a column."""
    table = pa.table(
        {"task_index": pa.array(list(tasks.values()), pa.int64()), "task": pa.array(list(tasks))}
    )
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": "task",
                "field_name": "task",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    pq.write_table(table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()}), path)


def _info(
    store: EpisodeStore,
    names: Mapping[str, str],
    codecs: Mapping[str, str],
    cfg: ExportLeRobotConfig,
    episodes: int,
    frames: int,
    tasks: int,
) -> dict[str, Any]:
    """meta/info.json: sizes, path templates and features (codecs: video key -> codec written)."""
    fps = store.fps
    features: dict[str, Any] = {}
    for k, name in names.items():
        spec = store.features[k]
        if k in codecs:
            h, w, c = spec.shape
            features[name] = {
                "dtype": "video",
                "shape": [h, w, c],
                "names": ["height", "width", "channels"],
                "info": {
                    "video.height": h,
                    "video.width": w,
                    "video.codec": codecs[k],
                    "video.pix_fmt": "yuv420p",
                    "video.is_depth_map": False,
                    "video.fps": fps,
                    "video.channels": c,
                    "has_audio": False,
                },
            }
        else:
            features[name] = {
                "dtype": "float32" if spec.dtype == "float16" else spec.dtype,
                "shape": list(spec.shape) or [1],
                "names": list(spec.names) if spec.names else None,
            }
    for col, dt in (
        ("timestamp", "float32"),
        ("frame_index", "int64"),
        ("episode_index", "int64"),
        ("index", "int64"),
        ("task_index", "int64"),
    ):
        features[col] = {"dtype": dt, "shape": [1], "names": None}
    return {
        "codebase_version": "v3.0",
        "robot_type": cfg.robot_type,
        "total_episodes": episodes,
        "total_frames": frames,
        "total_tasks": tasks,
        "chunks_size": cfg.chunks_size,
        "data_files_size_in_mb": cfg.data_file_mb,
        "video_files_size_in_mb": cfg.video_file_mb,
        "fps": int(fps) if float(fps).is_integer() else fps,
        "splits": {"train": f"0:{episodes}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if codecs else None,
        "features": features,
    }


def _codec_name(encoder: str) -> str:
    return {"libx264": "h264", "h264": "h264", "libsvtav1": "av1", "libx265": "hevc"}.get(encoder, encoder)

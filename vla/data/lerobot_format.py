"""Reading LeRobot datasets, codebase v2.0/v2.1 and v3.0, without the lerobot package.

Layouts (from `meta/info.json`, whose `data_path`/`video_path` templates are used as given):

    v2.x  data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet     one episode per file
          videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4
          meta/episodes.jsonl (episode_index, tasks, length), meta/tasks.jsonl (task_index, task)
    v3.0  data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet              many episodes per file
          videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4  episodes back to back
          meta/episodes/chunk-*/file-*.parquet (episode_index, tasks, length, data/chunk_index,
          data/file_index, dataset_from_index, dataset_to_index, videos/<key>/{chunk_index, file_index,
          from_timestamp, to_timestamp}, stats/...), meta/tasks.parquet (task -> task_index)

`LeRobotSource(path)` reads the metadata and lists `EpisodeRef`s; `read_columns(ref)` returns the episode's
parquet columns as numpy arrays and `read_video(ref, key)` its decoded frames. Every missing file or
inconsistent count is a ValueError/FileNotFoundError naming the file, the episode and the key.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vla.data.video import decode_video
from vla.core.io import read_json

INDEX_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


@dataclass
class EpisodeRef:
    """Where one LeRobot episode lives."""

    index: int
    length: int
    tasks: list[str]
    data_file: Path
    videos: dict[str, tuple[Path, float | None, float | None]] = field(
        default_factory=dict
    )  # key -> file, from, to


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"LeRobot metadata file not found: {path}")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: invalid JSON line: {e}") from e
    return rows


def _read_parquet(path: Path, what: str) -> pa.Table:
    if not path.is_file():
        raise FileNotFoundError(f"LeRobot {what} not found: {path}")
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise ValueError(f"LeRobot {what} {path} is not a readable parquet file: {e}") from e


def column_to_numpy(col: pa.ChunkedArray | pa.Array, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A parquet column of (nested) lists/scalars as a numpy array [N, *shape] (shape [1] may be scalar)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    while (
        pa.types.is_list(arr.type)
        or pa.types.is_fixed_size_list(arr.type)
        or pa.types.is_large_list(arr.type)
    ):
        arr = arr.flatten()
    values = arr.to_numpy(zero_copy_only=False)
    want = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if values.size != n * want:
        raise ValueError(f"{where}: expected {n} rows of shape {list(shape)}, got {values.size} values")
    return values.reshape((n, *shape))


def feature_names(spec: dict[str, Any]) -> tuple[str, ...] | None:
    """LeRobot `names` may be a list, a list of lists or a dict of lists; return a flat tuple of names."""
    names = spec.get("names")
    if isinstance(names, dict):
        names = next(iter(names.values()), None)
    if isinstance(names, list) and names and isinstance(names[0], list):
        names = names[0]
    if isinstance(names, list) and all(isinstance(x, str) for x in names):
        shape = spec.get("shape") or []
        if len(shape) == 1 and len(names) == shape[0]:
            return tuple(names)
    return None


class LeRobotSource:
    """Metadata and episode access for one LeRobot dataset directory."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"LeRobot dataset directory not found: {self.root}")
        self.info = read_json(self.root / "meta" / "info.json", "LeRobot meta/info.json")
        self.version = str(self.info.get("codebase_version", ""))
        if not self.version.startswith(("v2.", "v3.")):
            raise ValueError(
                f"{self.root}: unsupported LeRobot codebase_version {self.version!r} (v2.x, v3.0)"
            )
        for k in ("fps", "features", "data_path"):
            if k not in self.info:
                raise ValueError(f"{self.root / 'meta' / 'info.json'}: missing field {k!r}")
        self.fps = float(self.info["fps"])
        self.features: dict[str, dict[str, Any]] = self.info["features"]
        self.video_keys = [k for k, v in self.features.items() if v.get("dtype") == "video"]
        self._episodes = self._load_v2() if self.version.startswith("v2.") else self._load_v3()
        self._table_cache: tuple[Path, pa.Table] | None = None

    # --- metadata ------------------------------------------------------------------------------------
    def _load_v2(self) -> dict[int, EpisodeRef]:
        meta = self.root / "meta"
        tasks = {int(r["task_index"]): str(r["task"]) for r in _read_jsonl(meta / "tasks.jsonl")}
        self.tasks = tasks
        chunks = int(self.info.get("chunks_size", 1000))
        out = {}
        for row in _read_jsonl(meta / "episodes.jsonl"):
            ep = int(row["episode_index"])
            chunk = ep // chunks
            fmt = {"episode_chunk": chunk, "episode_index": ep}
            videos = {
                k: (self.root / self.info["video_path"].format(video_key=k, **fmt), None, None)
                for k in self.video_keys
            }
            out[ep] = EpisodeRef(
                ep,
                int(row["length"]),
                [str(t) for t in row.get("tasks", [])],
                self.root / self.info["data_path"].format(**fmt),
                videos,
            )
        return out

    def _load_v3(self) -> dict[int, EpisodeRef]:
        meta = self.root / "meta"
        t = _read_parquet(meta / "tasks.parquet", "meta/tasks.parquet")
        text_col = next((c for c in ("task", "__index_level_0__") if c in t.column_names), None)
        if text_col is None or "task_index" not in t.column_names:
            raise ValueError(
                f"{meta / 'tasks.parquet'}: expected columns 'task' and 'task_index', got {t.column_names}"
            )
        self.tasks = {int(i): str(s) for i, s in zip(t["task_index"].to_pylist(), t[text_col].to_pylist())}
        files = sorted((meta / "episodes").glob("chunk-*/file-*.parquet"))
        if not files:
            raise FileNotFoundError(
                f"LeRobot v3 episode metadata not found: {meta / 'episodes'}/chunk-*/file-*.parquet"
            )
        out = {}
        for f in files:
            for row in _read_parquet(f, "episode metadata").to_pylist():
                ep = int(row["episode_index"])
                try:
                    data = self.root / self.info["data_path"].format(
                        chunk_index=int(row["data/chunk_index"]), file_index=int(row["data/file_index"])
                    )
                    videos = {}
                    for k in self.video_keys:
                        p = self.root / self.info["video_path"].format(
                            video_key=k,
                            chunk_index=int(row[f"videos/{k}/chunk_index"]),
                            file_index=int(row[f"videos/{k}/file_index"]),
                        )
                        videos[k] = (
                            p,
                            float(row[f"videos/{k}/from_timestamp"]),
                            float(row[f"videos/{k}/to_timestamp"]),
                        )
                except KeyError as e:
                    raise ValueError(f"{f}: episode {ep} lacks column {e.args[0]!r}") from None
                out[ep] = EpisodeRef(
                    ep, int(row["length"]), [str(x) for x in row.get("tasks") or []], data, videos
                )
        return out

    @property
    def episode_indices(self) -> list[int]:
        return sorted(self._episodes)

    def episode(self, index: int) -> EpisodeRef:
        if index not in self._episodes:
            raise ValueError(
                f"{self.root}: episode {index} not in the dataset (episodes {self.episode_indices[0]}.."
                f"{self.episode_indices[-1]}, {len(self._episodes)} in all)"
            )
        return self._episodes[index]

    def missing_files(self, refs: list[EpisodeRef], video_keys: list[str]) -> list[str]:
        """Human-readable lines for each missing parquet/video file of `refs`."""
        lines = []
        for r in refs:
            if not r.data_file.is_file():
                lines.append(f"episode {r.index}: data file {r.data_file}")
            for k in video_keys:
                p = r.videos[k][0]
                if not p.is_file():
                    lines.append(f"episode {r.index}: video {k!r} file {p}")
        return lines

    # --- episode data --------------------------------------------------------------------------------
    def _table(self, path: Path) -> pa.Table:
        if self._table_cache is None or self._table_cache[0] != path:
            self._table_cache = (path, _read_parquet(path, "data file"))
        return self._table_cache[1]

    def read_columns(self, ref: EpisodeRef, keys: list[str]) -> dict[str, np.ndarray]:
        """Columns `keys` (plus index columns) of one episode, rows in frame order."""
        table = self._table(ref.data_file)
        if "episode_index" in table.column_names:
            table = table.filter(pc.equal(table["episode_index"], ref.index))
        if "frame_index" in table.column_names:
            table = table.sort_by("frame_index")
        if table.num_rows != ref.length:
            raise ValueError(
                f"{ref.data_file}: episode {ref.index} has {table.num_rows} rows, "
                f"metadata says {ref.length} frames"
            )
        out = {}
        for k in [*keys, *[c for c in INDEX_COLUMNS if c in table.column_names and c not in keys]]:
            if k not in table.column_names:
                raise ValueError(f"{ref.data_file}: episode {ref.index}: column {k!r} is missing")
            spec = self.features.get(k, {"shape": [1]})
            where = f"{ref.data_file} episode {ref.index} key {k!r}"
            if spec.get("dtype") == "image":
                out[k] = self._decode_images(table[k], where)
            else:
                out[k] = column_to_numpy(table[k], tuple(int(s) for s in spec.get("shape", [1])), where)
        return out

    @staticmethod
    def _decode_images(col: pa.ChunkedArray, where: str) -> np.ndarray:
        from PIL import Image

        frames = []
        for i, item in enumerate(col.to_pylist()):
            data = item.get("bytes") if isinstance(item, dict) else item
            if not data:
                raise ValueError(f"{where}: frame {i} has no embedded image bytes")
            frames.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
        return np.stack(frames)

    def read_video(self, ref: EpisodeRef, key: str, size: tuple[int, int] | None = None) -> np.ndarray:
        """Decoded RGB frames [length, H, W, 3] of video `key` for one episode (count checked)."""
        path, start, end = ref.videos[key]
        frames = decode_video(path, start, end, size=size, fps=self.fps)
        if frames.shape[0] != ref.length:
            span = f" in [{start:.3f}s, {end:.3f}s)" if start is not None else ""
            raise ValueError(
                f"{path}: episode {ref.index} key {key!r}: video has {frames.shape[0]} frames{span}, "
                f"the parquet/metadata say {ref.length}"
            )
        return frames

"""The episode store: demonstrations on zarr v3, in diffusion_policy's replay-buffer layout.

    <store>/zarr.json               root group; attributes = the store's metadata (see below)
    <store>/data/<key>              one array per feature, episodes concatenated on axis 0: [N, ...]
    <store>/meta/episode_ends       int64 [E], exclusive end frame of each episode

Attributes: format/version, fps, features (FeatureSpec dicts), meta (action space, env/task config,
source, the collect config, ...), episodes (one JSON object per episode: length, instruction, task,
success, split, seed, ...) and cached statistics. Images, depth and masks are chunked one frame per
chunk and compressed with blosc (uint8 images: lz4, about 25x on rendered 128x128 frames and ~17 us to
decode one; depth/masks: zstd with byte shuffle); low-dim keys in chunks of 1024 frames, zstd.

One writer at a time: mode "a" holds an advisory lock (`.writer.lock`, released on `close()` or when the
process dies); any number of readers may open the store meanwhile.

Atomic append: new frames are written past the committed end (zarr's LocalStore writes every chunk and
metadata file by temp file + rename, so a chunk shared with committed frames is either the old or the
new file, both holding the committed frames unchanged); the episode list in the root attributes is
written last, in one atomic file replace. That write is the commit: a writer killed earlier leaves
frames past the committed end, which readers ignore and `open(mode="a")` trims.

    store = EpisodeStore.create("demos.zarr", features, fps=10, meta={"action_space": "ee_delta"})
    store.append_episode({"action": a, "state": s, "images/front": img}, {"instruction": "pick", ...})
    ro = EpisodeStore.open("demos.zarr")                # read-only
    ro.episode(0)["action"]                             # [T, 7]
    ro.select(task="pick", success=True, split="train")
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from vla.data.chunks import FrameReader
from vla.core.normalizer import Normalizer, StatsAccumulator
from vla.core.types import FeatureSpec, FeatureType
from vla.core.io import atomic_directory

FORMAT = "vla.episode_store"
VERSION = 1
LOWDIM_CHUNK = 1024
IMAGE_COMPRESSION = ("lz4", "zstd")
_FRAME_TYPES = (FeatureType.VISUAL, FeatureType.DEPTH, FeatureType.SEGMENTATION, FeatureType.POINT_CLOUD)
_FINITE_TYPES = (FeatureType.ACTION, FeatureType.STATE)


def _jsonable(obj: Any, where: str) -> Any:
    try:
        return json.loads(json.dumps(obj))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: not JSON-serialisable: {e}") from e


def _writer_lock(path: Path) -> Any:
    """Hold an exclusive advisory lock on `<store>/.writer.lock` (released on close or process exit)."""
    f = open(path / ".writer.lock", "a+b")  # held for the store's lifetime
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise ValueError(
            f"{path}: another writer has this store open for appending; one writer at a time"
        ) from None
    return f


def is_frame_feature(spec: FeatureSpec) -> bool:
    """Images, depth, masks, point clouds: stored one frame per chunk."""
    return spec.type in _FRAME_TYPES or len(spec.shape) >= 2


class EpisodeStore:
    """A zarr v3 episode store opened read-only ("r") or for appending ("a"); see the module doc."""

    def __init__(self, path: Path, group: zarr.Group, mode: str) -> None:
        self.path = path
        self.mode = mode
        self._group = group
        self._attrs: dict[str, Any] = dict(group.attrs)
        if self._attrs.get("format") != FORMAT:
            raise ValueError(
                f"{path}: not an episode store (root attribute format={self._attrs.get('format')!r})"
            )
        if int(self._attrs.get("version", -1)) > VERSION:
            raise ValueError(f"{path}: store version {self._attrs.get('version')} is newer than {VERSION}")
        try:
            self.features = {k: FeatureSpec.from_dict(v) for k, v in self._attrs["features"].items()}
            self._episodes: list[dict[str, Any]] = list(self._attrs["episodes"])
            lengths = np.array([int(ep["length"]) for ep in self._episodes], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: malformed store attributes ({e!r})") from e
        self._ends = np.cumsum(lengths)
        self._arrays: dict[str, zarr.Array] = {}
        for key, spec in self.features.items():
            try:
                arr = group[f"data/{key}"]
            except KeyError:
                raise ValueError(f"{path}: corrupt store, array data/{key} is missing") from None
            if tuple(arr.shape[1:]) != spec.shape:
                raise ValueError(
                    f"{path}: data/{key} has frame shape {arr.shape[1:]}, features say {spec.shape}"
                )
            if arr.shape[0] < self.num_frames:
                raise ValueError(
                    f"{path}: corrupt store, data/{key} has {arr.shape[0]} frames "
                    f"but episodes need {self.num_frames}"
                )
            self._arrays[key] = arr
        self._lock = None
        if mode == "a":
            self._lock = _writer_lock(path)
            self._trim()

    # --- construction --------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        features: Mapping[str, FeatureSpec],
        fps: float,
        meta: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        image_compression: str = "lz4",
    ) -> EpisodeStore:
        """Create an empty store (the directory appears complete or not at all).

        `image_compression` for uint8 frames: "lz4" (fast decode; rendered sim frames shrink ~25x) or
        "zstd" (real camera frames shrink ~1.6x more than with lz4, at half the decode speed).
        """
        path = Path(path)
        if image_compression not in IMAGE_COMPRESSION:
            raise ValueError(
                f"{path}: image_compression must be one of {IMAGE_COMPRESSION}, got {image_compression!r}"
            )
        if path.exists() and not overwrite:
            raise FileExistsError(f"episode store already exists: {path} (pass overwrite=True to replace it)")
        if not features:
            raise ValueError(f"{path}: a store needs at least one feature")
        for key, spec in features.items():
            if spec.type is FeatureType.LANGUAGE or spec.dtype in ("str", "string", "object"):
                raise ValueError(
                    f"{path}: feature {key!r}: text is per-episode metadata, not a frame feature"
                )
        attrs = {
            "format": FORMAT,
            "version": VERSION,
            "fps": float(fps),
            "features": {k: s.to_dict() for k, s in features.items()},
            "meta": _jsonable(dict(meta or {}), f"{path}: meta"),
            "episodes": [],
            "stats": {},
            "image_compression": image_compression,
        }
        with atomic_directory(path, overwrite=overwrite) as tmp:
            g = zarr.open_group(str(tmp), mode="w", zarr_format=3)
            for key, spec in features.items():
                if is_frame_feature(spec):
                    chunks = (1, *spec.shape)
                    if np.dtype(spec.dtype).itemsize == 1:  # images: lz4 decodes 2.5x faster than zstd
                        clevel = 5 if image_compression == "lz4" else 3
                        comp = BloscCodec(cname=image_compression, clevel=clevel, shuffle="noshuffle")
                    else:  # depth, masks: byte shuffle + zstd
                        comp = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")
                else:
                    chunks = (LOWDIM_CHUNK, *spec.shape)
                    comp = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")
                g.create_array(
                    f"data/{key}", shape=(0, *spec.shape), chunks=chunks, dtype=spec.dtype, compressors=comp
                )
            g.create_array("meta/episode_ends", shape=(0,), chunks=(LOWDIM_CHUNK * 16,), dtype="int64")
            g.attrs.put(attrs)
        return cls.open(path, mode="a")

    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r") -> EpisodeStore:
        path = Path(path)
        if mode not in ("r", "a"):
            raise ValueError(f"EpisodeStore.open: mode must be 'r' or 'a', got {mode!r}")
        if not (path / "zarr.json").is_file():
            raise FileNotFoundError(f"episode store not found (no zarr.json): {path}")
        try:
            group = zarr.open_group(str(path), mode="r" if mode == "r" else "r+", zarr_format=3)
        except Exception as e:  # zarr raises assorted types for corrupt metadata
            raise ValueError(f"{path}: cannot open as a zarr v3 group: {e}") from e
        return cls(path, group, mode)

    def _trim(self) -> None:
        """Drop frames a killed writer left past the committed end (mode "a" only)."""
        n = self.num_frames
        for arr in self._arrays.values():
            if arr.shape[0] != n:
                arr.resize((n, *arr.shape[1:]))
        ends = self._group["meta/episode_ends"]
        if ends.shape[0] != self.num_episodes:
            ends.resize((self.num_episodes,))
        for p in self.path.rglob("*.partial"):
            p.unlink(missing_ok=True)

    # --- properties ----------------------------------------------------------------------------------
    @property
    def fps(self) -> float:
        return float(self._attrs["fps"])

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._attrs.get("meta", {})))

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    @property
    def num_frames(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def episode_ends(self) -> np.ndarray:
        """int64 [E] exclusive end frame of each episode (a copy)."""
        return self._ends.copy()

    @property
    def episode_starts(self) -> np.ndarray:
        return np.concatenate([[0], self._ends[:-1]]).astype(np.int64)

    def episode_slice(self, i: int) -> slice:
        i = self._check_index(i)
        start = int(self._ends[i - 1]) if i > 0 else 0
        return slice(start, int(self._ends[i]))

    def _check_index(self, i: int) -> int:
        if not -self.num_episodes <= int(i) < self.num_episodes:
            raise IndexError(f"{self.path}: episode {i} out of range (store has {self.num_episodes})")
        return int(i) % self.num_episodes

    def close(self) -> None:
        """Release the writer lock (mode "a"); the object can still read."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None
            self.mode = "r"

    def __enter__(self) -> EpisodeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.num_episodes

    def __repr__(self) -> str:
        return f"EpisodeStore({str(self.path)!r}, episodes={self.num_episodes}, frames={self.num_frames})"

    # --- reading -------------------------------------------------------------------------------------
    def episode(self, i: int, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Arrays of episode i: {key: [T, ...]} (all features, or `keys`)."""
        sl = self.episode_slice(i)
        return {k: self.read(k, sl.start, sl.stop) for k in (keys if keys is not None else self.features)}

    def read(self, key: str, start: int, stop: int) -> np.ndarray:
        """Frames [start, stop) of one key, shape [stop - start, ...]."""
        if key not in self._arrays:
            raise KeyError(f"{self.path}: no feature {key!r}; features are {sorted(self.features)}")
        if not 0 <= start <= stop <= self.num_frames:
            raise IndexError(f"{self.path}: frames [{start}, {stop}) outside [0, {self.num_frames})")
        return np.asarray(self._arrays[key][start:stop])

    def episode_meta(self, i: int) -> dict[str, Any]:
        """Per-episode metadata (a copy): length, instruction, task, success, split, ... plus `index`."""
        i = self._check_index(i)
        return {**json.loads(json.dumps(self._episodes[i])), "index": i}

    def select(
        self, task: str | None = None, success: bool | None = None, split: str | None = None, **eq: Any
    ) -> list[int]:
        """Indices of episodes whose metadata match every given filter."""
        want = {
            k: v for k, v in {"task": task, "success": success, "split": split, **eq}.items() if v is not None
        }
        return [i for i, ep in enumerate(self._episodes) if all(ep.get(k) == v for k, v in want.items())]

    def frame_reader(self, key: str) -> FrameReader:
        """A picklable fast reader for random frames of one key (for DataLoader workers)."""
        if key not in self.features:
            raise KeyError(f"{self.path}: no feature {key!r}; features are {sorted(self.features)}")
        return FrameReader(self.path / "data" / key)

    def nbytes(self) -> int:
        """Bytes on disk."""
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    # --- writing -------------------------------------------------------------------------------------
    def _require_writable(self) -> None:
        if self.mode != "a":
            raise ValueError(f"{self.path}: store is open read-only; open it with mode='a' to write")

    def _commit_attrs(self, **changes: Any) -> None:
        attrs = {**self._attrs, **changes}
        self._group.attrs.put(attrs)  # one atomic replace of zarr.json: the commit point
        self._attrs = attrs

    def validate_frames(self, frames: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Check keys, shapes, dtypes, equal lengths and finite actions/states; return arrays to write."""
        missing = sorted(set(self.features) - set(frames))
        extra = sorted(set(frames) - set(self.features))
        if missing or extra:
            raise ValueError(f"{self.path}: episode keys mismatch: missing {missing}, unexpected {extra}")
        out: dict[str, np.ndarray] = {}
        lengths = {}
        for key, spec in self.features.items():
            arr = np.asarray(frames[key])
            if tuple(arr.shape[1:]) != spec.shape or arr.ndim != len(spec.shape) + 1:
                raise ValueError(
                    f"{self.path}: key {key!r}: expected shape [T, {', '.join(map(str, spec.shape))}], "
                    f"got {arr.shape}"
                )
            if not np.can_cast(arr.dtype, spec.dtype, casting="same_kind"):
                raise ValueError(f"{self.path}: key {key!r}: expected dtype {spec.dtype}, got {arr.dtype}")
            arr = arr.astype(spec.dtype, copy=False)
            if spec.type in _FINITE_TYPES and not np.all(np.isfinite(arr)):
                t = int(np.argwhere(~np.isfinite(arr.reshape(arr.shape[0], -1)))[0][0])
                raise ValueError(f"{self.path}: key {key!r}: non-finite value at frame {t}")
            lengths[key] = arr.shape[0]
            out[key] = arr
        if len(set(lengths.values())) != 1:
            raise ValueError(f"{self.path}: keys have different lengths: {lengths}")
        if next(iter(lengths.values())) == 0:
            raise ValueError(f"{self.path}: an episode needs at least one frame")
        return out

    def append_episode(self, frames: Mapping[str, Any], episode_meta: Mapping[str, Any] | None = None) -> int:
        """Append one episode atomically; returns its index. `frames` never mutated."""
        self._require_writable()
        arrays = self.validate_frames(frames)
        meta = _jsonable(dict(episode_meta or {}), f"{self.path}: episode_meta")
        t = next(iter(arrays.values())).shape[0]
        start, end = self.num_frames, self.num_frames + t
        try:
            for key, arr in arrays.items():
                z = self._arrays[key]
                z.resize((end, *z.shape[1:]))
                z[start:end] = arr
            ends = self._group["meta/episode_ends"]
            ends.resize((self.num_episodes + 1,))
            ends[self.num_episodes] = end
        except BaseException:
            self._trim()  # put the arrays back to the committed length, then report
            raise
        meta["length"] = int(t)
        self._commit_attrs(episodes=[*self._episodes, meta])
        self._episodes.append(meta)
        self._ends = np.append(self._ends, end).astype(np.int64)
        return self.num_episodes - 1

    def update_meta(self, **changes: Any) -> None:
        """Merge `changes` into the store-level meta (atomically)."""
        self._require_writable()
        self._commit_attrs(meta={**self._attrs.get("meta", {}), **_jsonable(changes, f"{self.path}: meta")})

    def delete_episodes(self, ids: Iterable[int]) -> None:
        """Remove episodes (the store is rewritten beside itself and swapped in one rename)."""
        self._require_writable()
        drop = {self._check_index(i) for i in ids}
        if not drop:
            return
        keep = [i for i in range(self.num_episodes) if i not in drop]
        staged = self.path.with_name(f".{self.path.name}.rewrite-{os.getpid()}")
        shutil.rmtree(staged, ignore_errors=True)
        try:
            new = EpisodeStore.create(
                staged,
                self.features,
                self.fps,
                self._attrs.get("meta", {}),
                image_compression=self._attrs.get("image_compression", "lz4"),
            )
            for i in keep:
                ep = {k: v for k, v in self.episode_meta(i).items() if k not in ("index", "length")}
                new.append_episode(self.episode(i), ep)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        new.close()
        self.close()
        old = self.path.with_name(f".{self.path.name}.old-{os.getpid()}")
        os.replace(self.path, old)
        os.replace(staged, self.path)
        shutil.rmtree(old, ignore_errors=True)
        fresh = EpisodeStore.open(self.path, mode="a")
        self.__dict__.update(fresh.__dict__)

    # --- statistics ----------------------------------------------------------------------------------
    def stats(self, key: str, block: int = 8192) -> dict[str, np.ndarray]:
        """Per-dimension stats of `key` over all frames (last dim = D), cached in the store's attributes."""
        if key not in self.features:
            raise KeyError(f"{self.path}: no feature {key!r}; features are {sorted(self.features)}")
        cached = self._attrs.get("stats", {}).get(key)
        if (
            cached
            and cached.get("num_frames") == self.num_frames
            and cached.get("num_episodes") == self.num_episodes
        ):
            return {k: np.asarray(v) for k, v in cached["values"].items()}
        if self.num_frames == 0:
            raise ValueError(f"{self.path}: no frames, cannot compute stats for {key!r}")
        spec = self.features[key]
        acc = StatsAccumulator(spec.shape[-1] if spec.shape else 1)
        for s in range(0, self.num_frames, block):
            chunk = self.read(key, s, min(s + block, self.num_frames))
            acc.update(
                chunk.reshape(*chunk.shape[:1], -1) if not spec.shape else chunk, where=f"{self.path} {key}"
            )
        result = acc.result()
        entry = {
            "num_frames": self.num_frames,
            "num_episodes": self.num_episodes,
            "values": {k: v.tolist() for k, v in result.items()},
        }
        stats = {**self._attrs.get("stats", {}), key: entry}
        if self.mode == "a":
            self._commit_attrs(stats=stats)
        else:  # read-only: cache in memory only
            self._attrs = {**self._attrs, "stats": stats}
        return result

    def normalizer(self, modes: Mapping[str, str]) -> Normalizer:
        """A Normalizer over this store's statistics for the keys in `modes`."""
        return Normalizer({k: self.stats(k) for k, m in modes.items() if m != "identity"}, modes)

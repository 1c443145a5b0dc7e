"""The episode store: demonstrations on zarr v3, in diffusion_policy's replay-buffer layout.

    <store>/zarr.json               root group; attributes = the store's metadata (see below)
    <store>/data/<key>              one array per feature, episodes concatenated on axis 0: [N, ...]
    <store>/meta/episode_ends       int64 [E], exclusive end frame of each episode

Attributes: format/version, fps, features (FeatureSpec dicts), meta (action space, env/task config,
source, the collect config, ...), episodes (one JSON object per episode: length, instruction, task,
success, split, seed, ...), checksums (per episode, per key: crc32 of its frames), integrity and cached
statistics. Images, depth and masks are chunked one frame per chunk and compressed with blosc (uint8
images: lz4, about 25x on rendered 128x128 frames and ~17 us to decode one; depth/masks: zstd with byte
shuffle); low-dim keys in chunks of 1024 frames, zstd.

One writer at a time: `create` and mode "a" hold an advisory lock on a file beside the store
(`<store>.lock`, fcntl), taken before the store is created, replaced or appended to, and released on
`close()` or when the process dies; a second writer gets one clear error. Any number of readers may open
the store meanwhile.

Atomic append: new frames are written past the committed end (zarr's LocalStore writes every chunk and
metadata file by temp file + rename, so a chunk shared with committed frames is either the old or the
new file, both holding the committed frames unchanged); the episode list in the root attributes is
written last, in one atomic file replace. That write is the commit: a writer killed earlier leaves
frames past the committed end, which readers ignore and `open(mode="a")` trims.

The store checks itself: `open` verifies the attributes (fps > 0 and finite, whole positive episode
lengths, numeric dtypes), each array's dtype and frame shape against its feature, `meta/episode_ends`
against the episode lengths, and that the low-dim chunks exist. Every chunk is written, all-zero ones
included (zarr 3 skips those by default and reads a missing chunk as its fill value), so a missing chunk
is an error naming the array and chunk, never zeros. `append_episode` records a crc32 per key of the
episode's frames, which `verify` (and `vla dataset verify STORE`) checks chunk by chunk; cached statistics
carry a fingerprint of the data they summarise and a checksum of their values, and are recomputed when
either does not match. Stores written before these records open as before (`verify` says so).
`fingerprint()` identifies the data (counts and a crc32 over every episode's metadata and checksums):
a resumed training run compares it, so a store re-collected or appended to at the same path is noticed.

    store = EpisodeStore.create("demos.zarr", features, fps=10, meta={"action_space": "ee_delta"})
    store.append_episode({"action": a, "state": s, "images/front": img}, {"instruction": "pick", ...})
    ro = EpisodeStore.open("demos.zarr")                # read-only
    ro.episode(0)["action"]                             # [T, 7]
    ro.select(task="pick", success=True, split="train")
    verify_store("demos.zarr").lines()                  # every chunk against the recorded checksums
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import math
import os
import shutil
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from vla.core.io import StorageError, atomic_directory, file_mode, storage_error, storage_faults
from vla.core.normalizer import Normalizer, StatsAccumulator
from vla.core.types import STATE_KEY, FeatureSpec, FeatureType
from vla.data.chunks import FrameReader

FORMAT = "vla.episode_store"
VERSION = 1
LOWDIM_CHUNK = 1024
IMAGE_COMPRESSION = ("lz4", "zstd")
LOCK_SUFFIX = ".lock"  # the writer lock: a file beside the store, `<store>.lock`
CHECKSUM = "crc32"
# root attribute "integrity" of stores that write every chunk and record checksums (absent in older ones)
INTEGRITY = {"checksum": CHECKSUM, "all_chunks": True}
_FRAME_TYPES = (FeatureType.VISUAL, FeatureType.DEPTH, FeatureType.SEGMENTATION, FeatureType.POINT_CLOUD)
_FINITE_TYPES = (FeatureType.ACTION, FeatureType.STATE)
_DTYPE_KINDS = "biuf"  # bool, signed and unsigned integers, floats: what a frame feature may hold
_WRITE_ALL_CHUNKS = {"write_empty_chunks": True}


def _jsonable(obj: Any, where: str) -> Any:
    try:
        return json.loads(json.dumps(obj))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: not JSON-serialisable: {e}") from e


def lock_path(path: str | os.PathLike) -> Path:
    """The writer lock of the store at `path`: `<store>.lock` beside it (never inside the directory that
    `create` replaces)."""
    p = Path(path)
    return p.with_name(p.name + LOCK_SUFFIX)


class _WriterLock:
    """An exclusive advisory lock (fcntl.flock) on `<store>.lock`, held while a store is created or open
    for appending. The file is removed on release while still locked; a writer that locked a file which was
    removed meanwhile retries, so two writers never both hold it."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.path = lock_path(store)
        self._fd: int | None = None
        for _ in range(100):
            with storage_faults(store, "write"):  # the lock file beside the store: a read-only parent
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, file_mode())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise ValueError(
                    f"{store}: another writer has this store open for creating or appending (lock "
                    f"{self.path.name}); one writer at a time"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode())
                return
            os.close(fd)  # the holder released (and removed) it between our open and our lock: retry
        raise ValueError(f"{store}: could not take the writer lock {self.path}")

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __del__(self) -> None:  # a store dropped without close() frees its lock, as a closed file would
        with contextlib.suppress(Exception):  # at interpreter exit the process's end frees it anyway
            self.release()

    def release(self) -> None:
        if getattr(self, "_fd", None) is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # still locked: a waiting writer sees the file is gone and retries
        os.close(self._fd)
        self._fd = None


def checksum(arr: np.ndarray) -> int:
    """crc32 of an array's bytes (C order, its own dtype): the per-episode, per-key record."""
    return zlib.crc32(memoryview(np.ascontiguousarray(arr)).cast("B"))


def is_frame_feature(spec: FeatureSpec) -> bool:
    """Images, depth, masks, point clouds: stored one frame per chunk."""
    return spec.type in _FRAME_TYPES or len(spec.shape) >= 2


def _check_feature(path: Path, key: str, raw: Any) -> FeatureSpec:
    """A feature from the attributes, checked: whole positive shape entries and a numeric dtype."""
    if not isinstance(raw, dict) or not isinstance(raw.get("shape"), list):
        raise ValueError(f"{path}: feature {key!r}: malformed spec {raw!r}")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in raw["shape"]):
        raise ValueError(f"{path}: feature {key!r}: shape {raw['shape']} must hold whole numbers >= 1")
    spec = FeatureSpec.from_dict(raw)
    _check_dtype(path, key, spec.dtype)
    return spec


def _check_dtype(path: Path, key: str, dtype: str) -> None:
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        kind = "?"
    if kind not in _DTYPE_KINDS:
        raise ValueError(
            f"{path}: feature {key!r}: dtype {dtype!r} is not stored (bool, integer or float only)"
        )


def _check_fps(path: Path, fps: Any) -> float:
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"{path}: fps must be a finite number > 0, got {fps!r}")
    return float(fps)


def _check_path(path: Path, action: str) -> None:
    """A path the OS refuses to look at (a name too long, a loop of links) is one StorageError line."""
    try:
        (path / "zarr.json").exists()
    except OSError as e:
        err = storage_error(e, path, action)
        raise (err or StorageError(f"cannot {action} {path}: {e.strerror or e}", e.errno)) from None


class EpisodeStore:
    """A zarr v3 episode store opened read-only ("r") or for appending ("a"); see the module doc."""

    def __init__(self, path: Path, group: zarr.Group, mode: str, lock: _WriterLock | None = None) -> None:
        self.path = path
        self.mode = mode
        self._group = group
        self._lock = lock
        self._present: dict[str, set[int]] = {}  # chunk rows (axis-0 chunk indices) seen on disk
        self._attrs: dict[str, Any] = dict(group.attrs)
        if self._attrs.get("format") != FORMAT:
            raise ValueError(
                f"{path}: not an episode store (root attribute format={self._attrs.get('format')!r})"
            )
        if int(self._attrs.get("version", -1)) > VERSION:
            raise ValueError(f"{path}: store version {self._attrs.get('version')} is newer than {VERSION}")
        _check_fps(path, self._attrs.get("fps"))
        try:
            raw_features = self._attrs["features"]
            self._episodes: list[dict[str, Any]] = list(self._attrs["episodes"])
            if not isinstance(raw_features, dict) or not all(isinstance(e, dict) for e in self._episodes):
                raise TypeError("features must be an object and episodes a list of objects")
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: malformed store attributes ({e!r})") from e
        self.features = {k: _check_feature(path, k, v) for k, v in raw_features.items()}
        for i, ep in enumerate(self._episodes):
            n = ep.get("length")
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"{path}: episode {i}: length {n!r} is not a whole number >= 1")
        lengths = np.array([ep["length"] for ep in self._episodes], dtype=np.int64)
        self._ends = np.cumsum(lengths)
        sums = self._attrs.get("checksums")
        if sums is not None and (not isinstance(sums, list) or len(sums) != len(self._episodes)):
            n = len(sums) if isinstance(sums, list) else type(sums).__name__
            raise ValueError(f"{path}: checksums list has {n} entries for {len(self._episodes)} episodes")
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
            if arr.dtype != np.dtype(spec.dtype):
                raise ValueError(f"{path}: data/{key} holds {arr.dtype}, features say {spec.dtype}")
            if arr.shape[0] < self.num_frames:
                raise ValueError(
                    f"{path}: corrupt store, data/{key} has {arr.shape[0]} frames "
                    f"but episodes need {self.num_frames}"
                )
            self._arrays[key] = arr.with_config(_WRITE_ALL_CHUNKS) if mode == "a" else arr
        self._check_episode_ends()
        for key, spec in self.features.items():  # low-dim chunks are few: check them all now
            if not is_frame_feature(spec) and self._chunks_must_exist(key):
                self._require_chunks(key, 0, self.num_frames)
        if mode == "a":
            if lock is None or not lock.held:
                raise ValueError(f"{path}: mode 'a' needs the writer lock (use EpisodeStore.open)")
            with storage_faults(path, "append to"):
                self._trim()

    def _check_episode_ends(self) -> None:
        """meta/episode_ends must agree with the episode lengths (the replay-buffer index of other tools)."""
        try:
            arr = self._group["meta/episode_ends"]
        except KeyError:
            raise ValueError(f"{self.path}: corrupt store, array meta/episode_ends is missing") from None
        e = self.num_episodes
        if arr.shape[0] < e:
            raise ValueError(f"{self.path}: meta/episode_ends has {arr.shape[0]} entries for {e} episodes")
        if e == 0:
            return
        missing = self._missing_chunks(arr, 0, e)
        if missing:
            raise ValueError(f"{self.path}: meta/episode_ends: chunk {missing[0][0]} is missing")
        ends = np.asarray(arr[:e])
        bad = np.flatnonzero(ends != self._ends)
        if bad.size:
            i = int(bad[0])
            start = int(self._ends[i - 1]) if i else 0
            raise ValueError(
                f"{self.path}: episode {i}: length {int(self._ends[i]) - start} in the episode list but "
                f"meta/episode_ends says it ends at frame {int(ends[i])}, not {int(self._ends[i])}"
            )

    # --- chunks on disk ------------------------------------------------------------------------------
    @property
    def integrity(self) -> dict[str, Any]:
        """{"checksum": "crc32", "all_chunks": True} for stores that write every chunk; {} for older ones."""
        value = self._attrs.get("integrity")
        return dict(value) if isinstance(value, dict) else {}

    def _chunks_must_exist(self, key: str) -> bool:
        """Every chunk of `key` must be on disk: always in stores that write all chunks; in older ones (zarr
        skipped all-zero chunks, so an absent one may be legitimate) for the robot state only, which holds
        a unit quaternion and is never all zero."""
        return bool(self.integrity.get("all_chunks")) or key == STATE_KEY

    def _missing_chunks(self, arr: zarr.Array, start: int, stop: int) -> list[tuple[str, int]]:
        """(chunk key, axis-0 chunk index) of the chunks of `arr` covering rows [start, stop) that are not
        on disk."""
        if stop <= start:
            return []
        chunks = arr.chunks
        base = self.path / arr.path
        rows = range(start // chunks[0], (stop - 1) // chunks[0] + 1)
        rest = [range(math.ceil(n / c)) for n, c in zip(arr.shape[1:], chunks[1:])]
        out = []
        for idx in itertools.product(rows, *rest):
            name = arr.metadata.encode_chunk_key(idx)
            if not (base / name).is_file():
                out.append((name, idx[0]))
        return out

    def _require_chunks(self, key: str, start: int, stop: int) -> None:
        """ValueError naming the array and chunk if any chunk holding frames [start, stop) is missing."""
        arr = self._arrays[key]
        c0 = arr.chunks[0]
        seen = self._present.setdefault(key, set())
        rows = [r for r in range(start // c0, (stop - 1) // c0 + 1) if r not in seen] if stop > start else []
        for r in rows:
            missing = self._missing_chunks(arr, r * c0, min((r + 1) * c0, arr.shape[0]))
            if missing:
                lo, hi = r * c0, min((r + 1) * c0, self.num_frames) - 1
                raise ValueError(
                    f"{self.path}: data/{key}: chunk {missing[0][0]} (frames {lo}-{hi}) is missing; "
                    f"the store is damaged (vla dataset verify {self.path})"
                )
            seen.add(r)

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
        """Create an empty store (the directory appears complete or not at all) and return it open for
        appending. The writer lock beside the store is taken first and kept, so two writers creating one
        store never both succeed.

        `image_compression` for uint8 frames: "lz4" (fast decode; rendered sim frames shrink ~25x) or
        "zstd" (real camera frames shrink ~1.6x more than with lz4, at half the decode speed).
        """
        path = Path(path)
        if image_compression not in IMAGE_COMPRESSION:
            raise ValueError(
                f"{path}: image_compression must be one of {IMAGE_COMPRESSION}, got {image_compression!r}"
            )
        if not features:
            raise ValueError(f"{path}: a store needs at least one feature")
        fps = _check_fps(path, fps)
        for key, spec in features.items():
            if spec.type is FeatureType.LANGUAGE or spec.dtype in ("str", "string", "object"):
                raise ValueError(
                    f"{path}: feature {key!r}: text is per-episode metadata, not a frame feature"
                )
            _check_dtype(path, key, spec.dtype)
        attrs = {
            "format": FORMAT,
            "version": VERSION,
            "fps": fps,
            "features": {k: s.to_dict() for k, s in features.items()},
            "meta": _jsonable(dict(meta or {}), f"{path}: meta"),
            "episodes": [],
            "checksums": [],
            "integrity": dict(INTEGRITY),
            "stats": {},
            "image_compression": image_compression,
        }
        _check_path(path, "create")
        exists = f"episode store already exists: {path} (pass overwrite=True to replace it)"
        if path.exists() and not path.is_dir() and not overwrite:
            exists = f"cannot create episode store {path}: a file of that name exists"
        if path.exists() and not overwrite:
            raise FileExistsError(exists)
        lock = _WriterLock(path)
        try:
            if path.exists() and not overwrite:  # created by another writer while we took the lock
                raise FileExistsError(exists)
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
                        f"data/{key}",
                        shape=(0, *spec.shape),
                        chunks=chunks,
                        dtype=spec.dtype,
                        compressors=comp,
                    )
                g.create_array("meta/episode_ends", shape=(0,), chunks=(LOWDIM_CHUNK * 16,), dtype="int64")
                g.attrs.put(attrs)
            return cls._open(path, "a", lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r") -> EpisodeStore:
        """Open a store read-only ("r") or for appending ("a": takes the writer lock beside it)."""
        path = Path(path)
        if mode not in ("r", "a"):
            raise ValueError(f"EpisodeStore.open: mode must be 'r' or 'a', got {mode!r}")
        _check_path(path, "open")
        if not (path / "zarr.json").is_file():
            raise FileNotFoundError(f"episode store not found (no zarr.json): {path}")
        if mode == "r":
            return cls._open(path, mode, None)
        lock = _WriterLock(path)
        try:
            return cls._open(path, mode, lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _open(cls, path: Path, mode: str, lock: _WriterLock | None) -> EpisodeStore:
        if not (path / "zarr.json").is_file():
            raise FileNotFoundError(f"episode store not found (no zarr.json): {path}")
        try:
            group = zarr.open_group(str(path), mode="r" if mode == "r" else "r+", zarr_format=3)
        except Exception as e:  # zarr raises assorted types for corrupt metadata
            err = storage_error(e, path, "open") if isinstance(e, OSError) else None
            if err is not None:
                raise err from e
            raise ValueError(f"{path}: cannot open as a zarr v3 group: {e}") from e
        return cls(path, group, mode, lock)

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

    def episode_checksums(self, i: int) -> dict[str, int] | None:
        """{key: crc32} recorded when episode i was appended; None for episodes appended before checksums."""
        i = self._check_index(i)
        sums = self._attrs.get("checksums")
        entry = sums[i] if isinstance(sums, list) else None
        return {k: int(v) for k, v in entry.items()} if isinstance(entry, dict) else None

    def close(self) -> None:
        """Release the writer lock (mode "a"); the object can still read."""
        if self._lock is not None:
            self._lock.release()
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
        """Frames [start, stop) of one key, shape [stop - start, ...]. A chunk missing on disk (which zarr
        would read as zeros) or one that does not decode is a ValueError naming the array and chunk."""
        if key not in self._arrays:
            raise KeyError(f"{self.path}: no feature {key!r}; features are {sorted(self.features)}")
        if not 0 <= start <= stop <= self.num_frames:
            raise IndexError(f"{self.path}: frames [{start}, {stop}) outside [0, {self.num_frames})")
        if self._chunks_must_exist(key):
            self._require_chunks(key, start, stop)
        try:
            return np.asarray(self._arrays[key][start:stop])
        except Exception as e:  # a corrupt chunk: codec errors of assorted types
            raise ValueError(
                f"{self.path}: data/{key}: frames [{start}, {stop}) do not decode ({type(e).__name__}: {e}); "
                f"the store is damaged (vla dataset verify {self.path})"
            ) from e

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
        with storage_faults(self.path, "write to"):
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
        """Append one episode atomically; returns its index. `frames` never mutated. A full disk or a
        read-only store is one StorageError line, and the store keeps its committed episodes only."""
        self._require_writable()
        arrays = self.validate_frames(frames)
        meta = _jsonable(dict(episode_meta or {}), f"{self.path}: episode_meta")
        sums = {key: checksum(arr) for key, arr in arrays.items()}
        t = next(iter(arrays.values())).shape[0]
        start, end = self.num_frames, self.num_frames + t
        try:
            with storage_faults(self.path, "append to"):
                for key, arr in arrays.items():
                    z = self._arrays[key]
                    z.resize((end, *z.shape[1:]))
                    z[start:end] = arr
                ends = self._group["meta/episode_ends"].with_config(_WRITE_ALL_CHUNKS)
                ends.resize((self.num_episodes + 1,))
                ends[self.num_episodes] = end
        except BaseException:
            with contextlib.suppress(OSError):  # on a full disk the trim may fail too: readers ignore
                self._trim()  # frames past the committed end, and the next open(mode="a") trims them
            raise
        meta["length"] = int(t)
        old = self._attrs.get("checksums")
        listed = list(old) if isinstance(old, list) else [None] * self.num_episodes
        self._commit_attrs(episodes=[*self._episodes, meta], checksums=[*listed, sums])
        self._episodes.append(meta)
        self._ends = np.append(self._ends, end).astype(np.int64)
        return self.num_episodes - 1

    def update_meta(self, **changes: Any) -> None:
        """Merge `changes` into the store-level meta (atomically)."""
        self._require_writable()
        self._commit_attrs(meta={**self._attrs.get("meta", {}), **_jsonable(changes, f"{self.path}: meta")})

    def delete_episodes(self, ids: Iterable[int]) -> None:
        """Remove episodes (the store is rewritten beside itself and swapped in one rename; the writer lock
        is held throughout)."""
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
            try:
                for i in keep:
                    ep = {k: v for k, v in self.episode_meta(i).items() if k not in ("index", "length")}
                    new.append_episode(self.episode(i), ep)
            finally:
                new.close()
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        old = self.path.with_name(f".{self.path.name}.old-{os.getpid()}")
        with storage_faults(self.path, "rewrite"):
            os.replace(self.path, old)
            os.replace(staged, self.path)
        shutil.rmtree(old, ignore_errors=True)
        lock, self._lock = self._lock, None
        fresh = EpisodeStore._open(self.path, "a", lock)
        self.__dict__.update(fresh.__dict__)

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this store's data: episode and frame counts and a crc32 over every episode's
        metadata (length, seed, instruction, ...) and recorded checksums. A store re-collected or appended
        to at the same path gets another one; episodes appended before checksums count by their metadata."""
        sums = self._attrs.get("checksums")
        text = json.dumps(
            [self._episodes, sums if isinstance(sums, list) else None], sort_keys=True, default=str
        )
        crc = zlib.crc32(text.encode())
        return {"episodes": self.num_episodes, "frames": self.num_frames, "crc32": f"{crc:08x}"}

    # --- statistics ----------------------------------------------------------------------------------
    def _stats_fingerprint(self, key: str) -> str:
        """What cached statistics of `key` summarise: frame and episode counts and the recorded checksums
        of its episodes (counts only for episodes appended before checksums)."""
        sums = self._attrs.get("checksums")
        per_episode = [
            (e.get(key) if isinstance(e, dict) else None) for e in (sums if isinstance(sums, list) else [])
        ]
        text = json.dumps([self.num_frames, self.num_episodes, per_episode])
        return f"{CHECKSUM}:{zlib.crc32(text.encode()):08x}"

    @staticmethod
    def _stats_checksum(values: Mapping[str, Any], fingerprint: str) -> str:
        text = json.dumps({"values": values, "fingerprint": fingerprint}, sort_keys=True)
        return f"{CHECKSUM}:{zlib.crc32(text.encode()):08x}"

    def cached_stats_valid(self, key: str) -> bool | None:
        """True when the cached statistics of `key` match the data (fingerprint and checksum), False when
        they do not, None when none are cached."""
        cached = self._attrs.get("stats", {}).get(key) if isinstance(self._attrs.get("stats"), dict) else None
        if not cached:
            return None
        if not isinstance(cached, dict) or not isinstance(cached.get("values"), dict):
            return False
        fp = self._stats_fingerprint(key)
        return cached.get("fingerprint") == fp and cached.get("checksum") == self._stats_checksum(
            cached["values"], fp
        )

    def stats(self, key: str, block: int = 8192) -> dict[str, np.ndarray]:
        """Per-dimension stats of `key` over all frames (last dim = D), cached in the store's attributes
        with a fingerprint of the data and a checksum of the values (recomputed when either differs)."""
        if key not in self.features:
            raise KeyError(f"{self.path}: no feature {key!r}; features are {sorted(self.features)}")
        if self.cached_stats_valid(key):
            return {k: np.asarray(v) for k, v in self._attrs["stats"][key]["values"].items()}
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
        values = {k: v.tolist() for k, v in result.items()}
        fp = self._stats_fingerprint(key)
        entry = {
            "num_frames": self.num_frames,
            "num_episodes": self.num_episodes,
            "values": values,
            "fingerprint": fp,
            "checksum": self._stats_checksum(values, fp),
        }
        cached = self._attrs.get("stats")
        stats = {**(cached if isinstance(cached, dict) else {}), key: entry}
        if self.mode == "a":
            self._commit_attrs(stats=stats)
        else:  # read-only: cache in memory only
            self._attrs = {**self._attrs, "stats": stats}
        return result

    def normalizer(self, modes: Mapping[str, str]) -> Normalizer:
        """A Normalizer over this store's statistics for the keys in `modes`."""
        return Normalizer({k: self.stats(k) for k, m in modes.items() if m != "identity"}, modes)


# --- verification ------------------------------------------------------------------------------------
@dataclass
class StoreCheck:
    """What `verify_store` found: `problems` (the store is wrong: exit 1), `notes` (worth knowing, not
    wrong) and what was checked."""

    path: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    episodes: int = 0
    frames: int = 0
    arrays: int = 0
    chunks: int = 0
    checksummed: int = 0  # episodes whose every key was compared with its recorded checksum

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """One line per problem and note, then the summary line."""
        out = [f"{self.path}: {p}" for p in self.problems] + [f"{self.path}: note: {n}" for n in self.notes]
        verdict = "OK" if self.ok else f"{len(self.problems)} problem{'s' * (len(self.problems) != 1)}"
        out.append(
            f"{self.path}: {self.episodes} episodes, {self.frames} frames, {self.arrays} arrays, "
            f"{self.chunks} chunks checked, {self.checksummed} episodes against their checksums: {verdict}"
        )
        return out


def verify_store(path: str | os.PathLike) -> StoreCheck:
    """Check a whole store: what `open` checks, every chunk of every array present, every episode's frames
    against the checksums recorded at append, and the cached statistics. Never raises for a damaged store:
    each problem is one line of the result."""
    path = Path(path)
    report = StoreCheck(path)
    try:
        store = EpisodeStore.open(path)
    except (ValueError, FileNotFoundError) as e:
        report.problems.append(str(e).removeprefix(f"{path}: "))
        return report
    report.episodes, report.frames, report.arrays = store.num_episodes, store.num_frames, len(store.features)
    sums = [store.episode_checksums(i) for i in range(store.num_episodes)]
    missing_rows: dict[str, set[int]] = {}
    for key in store.features:
        arr = store._arrays[key]
        c0 = arr.chunks[0]
        rest = [math.ceil(n / c) for n, c in zip(arr.shape[1:], arr.chunks[1:])]
        report.chunks += math.ceil(store.num_frames / c0) * int(np.prod(rest, dtype=np.int64))
        absent = store._missing_chunks(arr, 0, store.num_frames)
        missing_rows[key] = {r for _, r in absent}
        if absent and store._chunks_must_exist(key):
            for name, r in absent:
                lo, hi = r * c0, min((r + 1) * c0, store.num_frames) - 1
                report.problems.append(f"data/{key}: chunk {name} (frames {lo}-{hi}) is missing")
        elif absent:
            report.notes.append(
                f"data/{key}: {len(absent)} chunks absent; this store predates writing every chunk, so they "
                "may be all-zero frames zarr skipped (they read as zeros)"
            )
        if arr.shape[0] > store.num_frames:
            report.notes.append(
                f"data/{key}: {arr.shape[0] - store.num_frames} frames past the committed end (a killed "
                "writer's; the next append trims them)"
            )
    starts = store.episode_starts
    for i, recorded in enumerate(sums):
        if recorded is None:
            continue
        lo, hi = int(starts[i]), int(store.episode_ends[i])
        whole = True
        for key in store.features:
            c0 = store._arrays[key].chunks[0]
            if any(lo // c0 <= r <= (hi - 1) // c0 for r in missing_rows[key]):
                whole = False  # already reported as a missing chunk
                continue
            if key not in recorded:
                report.problems.append(f"data/{key}: episode {i} has no recorded checksum")
                whole = False
                continue
            try:
                got = checksum(store.read(key, lo, hi))
            except ValueError as e:
                report.problems.append(str(e).removeprefix(f"{path}: ").split("; the store is damaged")[0])
                whole = False
                continue
            if got != recorded[key]:
                first, last = lo // c0, (hi - 1) // c0
                where = f"chunk row {first}" if first == last else f"chunk rows {first}-{last}"
                report.problems.append(
                    f"data/{key}: episode {i} (frames {lo}-{hi - 1}, {where}) does not match its "
                    f"{CHECKSUM} checksum (recorded {recorded[key]:08x}, read {got:08x})"
                )
                whole = False
        report.checksummed += whole
    unrecorded = sum(s is None for s in sums)
    if unrecorded == len(sums) and sums:
        report.notes.append(
            "no checksums recorded (the store was written before checksums): structure and chunk presence "
            "checked only"
        )
    elif unrecorded:
        report.notes.append(f"{unrecorded} of {len(sums)} episodes were appended before checksums")
    for key in store.features:
        valid = store.cached_stats_valid(key)
        if valid is False:
            entry = store._attrs["stats"][key]
            if isinstance(entry, dict) and "checksum" in entry:
                report.problems.append(
                    f"cached statistics of {key!r} do not match the data they summarise (they are "
                    "recomputed on use)"
                )
            else:
                report.notes.append(f"cached statistics of {key!r} predate checksums (recomputed on use)")
    if list(path.rglob("*.partial")):
        report.notes.append("partial files of an interrupted write (the next append removes them)")
    return report

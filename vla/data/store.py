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

The store is split in three modules: this one (opening and its checks, creation, the writer's append,
metadata update and delete, `verify_store`), vla.data.store_format (format constants, attribute checks,
checksums, the writer lock) and vla.data.store_read (chunk presence, reads, selection, fingerprint,
statistics, and the checks behind `verify_store`); `EpisodeStore` joins them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from vla.core.io import atomic_directory, storage_error, storage_faults
from vla.core.types import FeatureSpec, FeatureType
from vla.data.store_format import (
    _FINITE_TYPES,
    _WRITE_ALL_CHUNKS,
    FORMAT,
    IMAGE_COMPRESSION,
    INTEGRITY,
    LOWDIM_CHUNK,
    VERSION,
    _check_dtype,
    _check_feature,
    _check_fps,
    _check_path,
    _jsonable,
    _WriterLock,
    checksum,
    is_frame_feature,
)
from vla.data.store_format import CHECKSUM as CHECKSUM
from vla.data.store_format import LOCK_SUFFIX as LOCK_SUFFIX
from vla.data.store_format import lock_path as lock_path
from vla.data.store_read import StoreCheck, StoreReader, verify_open_store


class EpisodeStore(StoreReader):
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
    return verify_open_store(store, report)

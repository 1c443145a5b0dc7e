"""The episode store's format and guards (vla.data.store): the format constants, the per-feature checks
every store runs on its attributes, the checksum of a key's frames, and the writer lock beside a store.

`open` and `create` check through these helpers: whole positive feature shapes, numeric dtypes (bool,
integer, float), a finite fps > 0, a path the OS will look at (one StorageError line otherwise), and
JSON-serialisable metadata. `_WriterLock` is the one-writer-at-a-time advisory lock on `<store>.lock`
(fcntl), taken before a store is created, replaced or appended to. `checksum` is the crc32 recorded per
episode and key at append and compared by `verify_store`; `is_frame_feature` says which features are
stored one frame per chunk.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from vla.core.io import StorageError, file_mode, storage_error, storage_faults
from vla.core.types import FeatureSpec, FeatureType

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

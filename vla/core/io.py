"""Atomic file writes for everything the stack persists (configs, stats, checkpoints, reports).

A writer never leaves a half-written file where a reader looks: content goes to a temporary file in the
same directory, is flushed and fsynced, then renamed over the target (rename is atomic on POSIX within one
file system). Directories are written the same way: fill a temporary sibling, then swap it in. What appears
gets the permissions the user's umask gives a new file or directory (0644 / 0755 under umask 022), not the
0600 / 0700 of a temporary one. A destination that cannot take the write (read-only file system, no
permission, disk or quota full, a file where a directory of the path should be, a directory where the
file should be, a name too long) is one `StorageError` line naming the path, with the temporary file or
directory removed: nothing half-written is left behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# errno -> what a user is told; the storage faults a command reports as one line
_STORAGE_ERRNOS = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (file size limit)",
    errno.EISDIR: "it is a directory",
    errno.ENAMETOOLONG: "file name too long",
}
# a path through a file: mkdir says EEXIST (parents=True, exist_ok=True) or ENOTDIR, open says ENOTDIR
_THROUGH_A_FILE = (errno.EEXIST, errno.ENOTDIR)


class StorageError(ValueError, OSError):
    """A destination that cannot be written (read-only, no permission, disk full, a file in the way): one
    clear line.

    A ValueError (the CLI prints it as one line) and an OSError (callers that catch OS errors still do);
    `errno` is the underlying error's."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.errno = code

    def __str__(self) -> str:
        return str(self.args[0])


def storage_error(exc: OSError, path: str | os.PathLike, action: str = "write") -> StorageError | None:
    """A StorageError for `exc` when it is a storage fault (read-only, permission, space), else None."""
    if isinstance(exc, StorageError):
        return exc
    code = getattr(exc, "errno", None) or -1
    if code in _THROUGH_A_FILE:
        blocker = _file_in_the_way(Path(path))
        if blocker is None:
            return None
        return StorageError(f"cannot {action} {path}: {blocker} is a file, not a directory", code)
    what = _STORAGE_ERRNOS.get(code)
    if what is None:
        return None
    msg = f"cannot {action} {path}: {what}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        free = free_bytes(Path(path))
        if free is not None:
            msg += f" ({free / 1e6:.1f} MB free)"
    return StorageError(msg, exc.errno)


@contextlib.contextmanager
def storage_faults(path: str | os.PathLike, action: str = "write") -> Iterator[None]:
    """Turn a storage OSError raised inside the block into one StorageError line naming `path`."""
    try:
        yield
    except OSError as e:
        err = storage_error(e, path, action)
        if err is None or err is e:
            raise
        raise err from e


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest existing parent of `path` (or `path` itself, for a directory to create) that is not a
    directory, if any."""
    for p in (path, *path.parents):
        try:
            if p.exists() or p.is_symlink():
                return None if p.is_dir() else p
        except OSError:
            return None
    return None


def free_bytes(path: Path) -> int | None:
    """Bytes available to this user on the file system holding `path` (its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def current_umask() -> int:
    """The process's umask (read from /proc without changing it; else set and restored at once)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain new file gets under the current umask (0o644 under umask 022)."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """The mode a new directory gets under the current umask (0o755 under umask 022)."""
    return 0o777 & ~current_umask()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot fsync a directory; rename still holds
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (temp file + fsync + rename). Returns the path."""
    path = Path(path)
    with storage_faults(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), file_mode())  # mkstemp makes 0600; a new file gets the umask's mode
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Read JSON, turning a missing or malformed file into an error that names it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {path} is not valid JSON: {e}") from e


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling directory to fill; on success it replaces `path` in one rename.

    If the block raises, the temporary directory is removed and `path` is untouched (a storage fault
    becomes one StorageError line naming `path`). An existing `path` is moved aside first and deleted only
    after the new one is in place, so a crash at any point leaves either the old or the new directory
    (plus at most a stray `.old`/`.tmp` sibling).
    """
    path = Path(path)
    with storage_faults(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists")
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            os.chmod(tmp, dir_mode())  # mkdtemp makes 0700; the directory gets the umask's mode
            yield tmp
            old = None
            if path.exists():
                old = path.with_name(f".{path.name}.old-{os.getpid()}")
                os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                if old is not None:  # put the old directory back where it was
                    os.replace(old, path)
                raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

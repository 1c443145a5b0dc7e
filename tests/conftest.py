"""Shared pytest set-up: loopback-only DDS, headless rendering, deterministic small thread pools; and the
file-system fault fixtures: `readonly_dir` (a directory no one can write: a read-only tmpfs as root, where
chmod does not restrict, else chmod 555) and `small_fs(size)` (a directory on a tmpfs of that size, for
full-disk tests; root only, else the test is skipped)."""

import os
import subprocess
from pathlib import Path

import pytest

# Cyclone DDS on loopback only, multicast off: tests never send traffic beyond 127.0.0.1.
os.environ.setdefault(
    "CYCLONEDDS_URI",
    '<CycloneDDS><Domain><General><Interfaces><NetworkInterface address="127.0.0.1"/></Interfaces>'
    "<AllowMulticast>false</AllowMulticast></General>"
    '<Discovery><ParticipantIndex>auto</ParticipantIndex><Peers><Peer address="127.0.0.1"/></Peers>'
    "</Discovery></Domain></CycloneDDS>",
)
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _mount_tmpfs(d: Path, options: str) -> bool:
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(d)], capture_output=True)
    except OSError:
        return False
    return r.returncode == 0


@pytest.fixture
def readonly_dir(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    if not _mount_tmpfs(d, "ro,size=64k"):
        pytest.skip("running as root, where chmod does not restrict, and no read-only tmpfs can be mounted")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)  # lazy: also when a file is still open


@pytest.fixture
def small_fs(tmp_path):
    """small_fs("256k") -> a new directory on a tmpfs of that size, unmounted after the test."""
    mounted: list[Path] = []

    def make(size: str) -> Path:
        d = tmp_path / f"small{len(mounted)}"
        d.mkdir()
        if os.geteuid() != 0 or not _mount_tmpfs(d, f"size={size}"):
            pytest.skip("a full file system needs a small tmpfs (root)")
        mounted.append(d)
        return d

    yield make
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], check=False)  # lazy: also when a file is still open

"""Resource limits of a run, checked before it starts: what the machine can hold, as one clear line.

A command that renders or records (collect, eval) asks `check_rollout_resources` before it starts any env:
the image size is capped (`MAX_IMAGE_SIZE`), the env processes are capped by the CPU count
(`ENVS_PER_CPU` per core; more env processes than episodes is allowed, the extra ones idle), and the
memory the rollouts need is estimated and compared with what the machine has available (MemAvailable, and the cgroup's limit when
there is one). With `out=`, the store's growth has a lower bound (episodes a quarter of the horizon long,
at the best compression measured on rendered frames, 25x) that must fit the free disk space there. A
violation is a `ConfigError` naming the key, the value and the estimate:

    env.image_size=16384 is above the limit of 1024 px (one 16384x16384 frame takes 12.9 GB to render ...)
    num_envs=500 is above 4 env processes per core (2 cores here) ...
    num_envs=8, env.image_size=1024, 2 cameras, depth need about 12.5 GB of memory (...), more than the ...

The estimate is deliberately coarse (a fixed cost per env process, pybullet's render buffers, one episode
of frames held by the recorder); it exists to turn a swap storm or a segfault minutes later into an
error now, not to plan memory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vla.core.config import ConfigError
from vla.core.io import free_bytes

MAX_IMAGE_SIZE = 1024  # px per side of a rendered camera image (observation or goal)
ENVS_PER_CPU = 4  # env processes per available core
ENV_PROCESS_BYTES = 250_000_000  # one env process: interpreter, pybullet, the scene (measured ~200 MB)
RENDER_BYTES_PER_PIXEL = 48  # pybullet's render of one camera: RGBA, depth and mask buffers and copies
RGB_BYTES, DEPTH_BYTES, SEG_BYTES = 3, 4, 4  # stored bytes per pixel of each observation image
BEST_COMPRESSION = 25  # lz4 on rendered 128 px frames (vla.data.store): a store never grows slower


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def available_cpus() -> int:
    """Cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return max(os.cpu_count() or 1, 1)


def available_memory() -> int | None:
    """Bytes of memory available now: MemAvailable, lowered to the cgroup's headroom when it is limited;
    None when neither can be read."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            headroom = max(int(limit) - used, 0)
            avail = headroom if avail is None else min(avail, headroom)
    except (OSError, ValueError):
        pass
    return avail


@dataclass(frozen=True)
class RolloutFootprint:
    """The estimate behind a check: bytes per env process and in all."""

    num_envs: int
    frame_bytes: int  # one step's observation images, all cameras
    episode_bytes: int  # one episode of frames held by a recorder
    render_bytes: int  # pybullet's peak for one render
    per_env_bytes: int
    total_bytes: int


def rollout_footprint(
    image_size: int | Sequence[int],
    cameras: Sequence[str],
    depth: bool,
    segmentation: bool,
    horizon: int,
    num_envs: int,
    goal_image_size: int = 0,
) -> RolloutFootprint:
    """Estimated memory of `num_envs` env processes rendering `cameras` at `image_size` and holding one
    `horizon`-step episode each."""
    h, w = (int(image_size), int(image_size)) if isinstance(image_size, int) else map(int, image_size)
    pixels = h * w
    per_pixel = RGB_BYTES + (DEPTH_BYTES if depth else 0) + (SEG_BYTES if segmentation else 0)
    frame = len(cameras) * pixels * per_pixel
    episode = frame * max(int(horizon), 1)
    render = max(pixels * (1 if cameras else 0), int(goal_image_size) ** 2) * RENDER_BYTES_PER_PIXEL
    per_env = ENV_PROCESS_BYTES + episode + render
    return RolloutFootprint(num_envs, frame, episode, render, per_env, per_env * max(num_envs, 1))


def check_image_size(key: str, size: int | Sequence[int]) -> None:
    """ConfigError when a rendered image is larger than MAX_IMAGE_SIZE on a side."""
    sides = [int(size)] if isinstance(size, int) else [int(s) for s in size]
    if max(sides) > MAX_IMAGE_SIZE:
        h = w = sides[0]
        if len(sides) == 2:
            h, w = sides
        need = h * w * RENDER_BYTES_PER_PIXEL
        raise ConfigError(
            f"{key}={size} is above the limit of {MAX_IMAGE_SIZE} px (one {h}x{w} frame takes "
            f"{_gb(need)} to render per camera)",
            key=key,
        )


def check_rollout_resources(
    image_size: int | Sequence[int],
    cameras: Sequence[str],
    depth: bool,
    segmentation: bool,
    horizon: int,
    num_envs: int,
    episodes: int,
    goal_image_size: int = 0,
    memory: int | None = None,
    cpus: int | None = None,
    out: str | os.PathLike | None = None,
    free_disk: int | None = None,
) -> RolloutFootprint:
    """Check a rollout run against the machine (see the module doc); returns the estimate. `memory`,
    `cpus` and `free_disk` (at `out`, the store being written; None: no disk check) default to what
    this machine has now."""
    check_image_size("env.image_size", image_size)
    if goal_image_size:
        check_image_size("env.goal_image_size", goal_image_size)
    if num_envs < 1 or episodes < 1:
        key = "num_envs" if num_envs < 1 else "episodes"
        raise ConfigError(f"{key} must be >= 1, got {num_envs if num_envs < 1 else episodes}", key=key)
    cpus = available_cpus() if cpus is None else cpus
    if num_envs > ENVS_PER_CPU * cpus:
        raise ConfigError(
            f"num_envs={num_envs} is above {ENVS_PER_CPU} env processes per core ({cpus} core"
            f"{'s' * (cpus != 1)} here: at most {ENVS_PER_CPU * cpus})",
            key="num_envs",
        )
    fp = rollout_footprint(image_size, cameras, depth, segmentation, horizon, num_envs, goal_image_size)
    memory = available_memory() if memory is None else memory
    if memory is not None and fp.total_bytes > memory:
        size = image_size if isinstance(image_size, int) else "x".join(map(str, image_size))
        raise ConfigError(
            f"num_envs={num_envs}, env.image_size={size}, {len(cameras)} camera{'s' * (len(cameras) != 1)}"
            f"{', depth' if depth else ''}{', segmentation' if segmentation else ''} need about "
            f"{_gb(fp.total_bytes)} of memory ({num_envs} x ({_gb(ENV_PROCESS_BYTES)} per process + "
            f"{_gb(fp.episode_bytes)} for a {horizon}-step episode + {_gb(fp.render_bytes)} to render)), "
            f"more than the {_gb(memory)} available; lower env.image_size or num_envs",
            key="num_envs" if num_envs > 1 else "env.image_size",
        )
    if out is not None:
        free = free_bytes(Path(out)) if free_disk is None else free_disk
        least = episodes * max(int(horizon) // 4, 1) * fp.frame_bytes // BEST_COMPRESSION
        if free is not None and least > free:
            raise ConfigError(
                f"episodes={episodes} need at least {_gb(least)} on disk at {out} (episodes a quarter of "
                f"the {horizon}-step horizon at {BEST_COMPRESSION}x compression), more than the "
                f"{_gb(free)} free",
                key="episodes",
            )
    return fp

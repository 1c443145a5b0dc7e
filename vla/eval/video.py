"""Episode videos for people to look at: mp4 (PyAV; H.264 when available, else MPEG-4 Part 2) or gif.

`write_video(path, frames, fps)` writes a list of uint8 [H,W,3] frames; the container follows the file
suffix (.mp4 or .gif). The file appears atomically (written to a temporary sibling, then renamed).
`VideoRecorder` is a rollout Observer that collects one camera's frames (`images/<camera>` or any other
uint8 key; depth keys are grey-mapped) during an episode, including the observation after the last
action (the optional `on_final_observation` hook of the rollout loop), and writes the file at the end.

    run_episode(env, policy, seed, observers=[VideoRecorder("out/ep0.mp4", camera="static")])
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vla.core.types import image_key

SUFFIXES = (".mp4", ".gif")


def _mp4_codec() -> str:
    import av

    for name in ("libx264", "h264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001  (PyAV raises several types for a missing encoder)
            continue
    raise RuntimeError("PyAV has no H.264 or MPEG-4 encoder")


def _check_frames(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    if len(frames) == 0:
        raise ValueError("frames: expected at least one frame")
    out = []
    shape = np.asarray(frames[0]).shape
    for i, f in enumerate(frames):
        arr = np.asarray(f)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"frames[{i}]: expected uint8 [H, W, 3], got {arr.dtype} {arr.shape}")
        if arr.shape != shape:
            raise ValueError(f"frames[{i}]: expected shape {shape} like frame 0, got {arr.shape}")
        out.append(arr)
    return out


def _pad_even(frame: np.ndarray) -> np.ndarray:
    """H.264 with yuv420p needs even sizes: pad by edge replication (a copy; the input is untouched)."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _write_mp4(tmp: str, frames: list[np.ndarray], fps: int) -> None:
    import av

    codec = _mp4_codec()
    with av.open(tmp, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        h, w = _pad_even(frames[0]).shape[:2]
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if codec != "mpeg4":
            stream.options = {"crf": "20", "preset": "veryfast"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(_pad_even(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_gif(tmp: str, frames: list[np.ndarray], fps: int) -> None:
    import imageio.v3 as iio

    iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=1000.0 / fps, loop=0)


def write_video(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: int = 10) -> Path:
    """Write frames (uint8 [H,W,3] each) to `path` (.mp4 or .gif), atomically. Returns the path."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"video path {path}: expected a suffix in {SUFFIXES}")
    if fps <= 0:
        raise ValueError(f"fps: expected > 0, got {fps}")
    checked = _check_frames(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        if path.suffix.lower() == ".mp4":
            _write_mp4(tmp, checked, int(fps))
        else:
            _write_gif(tmp, checked, int(fps))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def depth_to_rgb(depth: np.ndarray, near: float = 0.2, far: float = 1.5) -> np.ndarray:
    """Colour-map a depth image [H,W] (metres) to uint8 [H,W,3] (near = bright)."""
    d = np.clip((far - np.asarray(depth, dtype=np.float32)) / (far - near), 0.0, 1.0)
    g = (d * 255).astype(np.uint8)
    return np.stack([g, g, g], axis=-1)


class VideoRecorder:
    """Observer: records `key` (default `images/<camera>`) every step; writes `path` at episode end."""

    def __init__(
        self, path: str | os.PathLike, camera: str = "static", key: str | None = None, fps: int = 10
    ):
        self.path = Path(path)
        if self.path.suffix.lower() not in SUFFIXES:
            raise ValueError(f"video path {self.path}: expected a suffix in {SUFFIXES}")
        self.key = key or image_key(camera)
        self.fps = int(fps)
        self.frames: list[np.ndarray] = []
        self.written: Path | None = None

    def _frame(self, obs: Mapping[str, Any]) -> np.ndarray:
        if self.key not in obs:
            raise ValueError(f"VideoRecorder: observation has no key {self.key!r}; keys are {sorted(obs)}")
        frame = np.asarray(obs[self.key])
        if frame.ndim == 2:
            return depth_to_rgb(frame)
        return frame.copy()

    def on_episode_start(self, obs: Mapping[str, Any], info: Mapping[str, Any]) -> None:
        self.frames = []
        self.written = None

    def on_step(self, obs, action, reward, terminated, truncated, info) -> None:
        self.frames.append(self._frame(obs))

    def on_final_observation(self, obs: Mapping[str, Any]) -> None:
        self.frames.append(self._frame(obs))  # the end state (e.g. the object lifted)

    def on_episode_end(self, result: Any) -> None:
        if self.frames:
            self.written = write_video(self.path, self.frames, self.fps)

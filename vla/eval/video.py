"""Episode videos of a rollout: `VideoRecorder` is a rollout Observer that collects one camera's frames
(`images/<camera>` or any other uint8 key; depth keys are grey-mapped) during an episode, including the
observation after the last action (the optional `on_final_observation` hook of the rollout loop), and
writes the file at the end with the one video writer, `vla.data.video.write_video` (.mp4 or .gif).

    run_episode(env, policy, seed, observers=[VideoRecorder("out/ep0.mp4", camera="static")])
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vla.core.types import image_key
from vla.data.video import VIDEO_SUFFIXES, write_video


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
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise ValueError(f"video path {self.path}: expected a suffix in {VIDEO_SUFFIXES}")
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

"""Episode videos of a rollout: `VideoRecorder` is a rollout Observer that collects one camera's frames
(`images/<camera>` or any other uint8 key; depth keys are grey-mapped) during an episode, including the
observation after the last action (the optional `on_final_observation` hook of the rollout loop), and
writes the file at the end with the one video writer, `vla.data.video.write_video` (.mp4 or .gif);
`FrameLog` is the same observer without the file (its `frames`). For videos people watch,
`replay_episode` films a recorded episode again through the rollout loop in a deterministic env (e.g.
one rendering a viewing camera at 256 px, not the policy's small input), and `annotate` /
`caption_episode` write text (instruction, step, outcome) in a darkened band across the top of each
frame with Pillow's built-in font (no font files).

    run_episode(env, policy, seed, observers=[VideoRecorder("out/ep0.mp4", camera="static")])
    rep = replay_episode(env_256, seed, actions, key="images/static")   # frames, success, length
    write_video("out/ep0.mp4", caption_episode(rep.frames, instruction, "success", hold=10))
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vla.core.rollout import ReplayPolicy, run_episode
from vla.core.types import image_key
from vla.data.video import VIDEO_SUFFIXES, write_video


def depth_to_rgb(depth: np.ndarray, near: float = 0.2, far: float = 1.5) -> np.ndarray:
    """Colour-map a depth image [H,W] (metres) to uint8 [H,W,3] (near = bright)."""
    d = np.clip((far - np.asarray(depth, dtype=np.float32)) / (far - near), 0.0, 1.0)
    g = (d * 255).astype(np.uint8)
    return np.stack([g, g, g], axis=-1)


class FrameLog:
    """Observer: an episode's frames of `key`, after the reset and after every step (the final observation
    included), as fresh uint8 [H,W,3] arrays in `frames`."""

    def __init__(self, key: str):
        self.key = key
        self.frames: list[np.ndarray] = []

    def _frame(self, obs: Mapping[str, Any]) -> np.ndarray:
        """obs[key] as a fresh uint8 [H,W,3] frame (depth [H,W] grey-mapped)."""
        if self.key not in obs:
            who = type(self).__name__
            raise ValueError(f"{who}: observation has no key {self.key!r}; keys are {sorted(obs)}")
        frame = np.asarray(obs[self.key])
        if frame.ndim == 2:
            return depth_to_rgb(frame)
        return frame.copy()

    def on_episode_start(self, obs: Mapping[str, Any], info: Mapping[str, Any]) -> None:
        self.frames = []

    def on_step(self, obs, action, reward, terminated, truncated, info) -> None:
        self.frames.append(self._frame(obs))  # the observation the action was chosen from

    def on_final_observation(self, obs: Mapping[str, Any]) -> None:
        self.frames.append(self._frame(obs))  # the end state (e.g. the object lifted)

    def on_episode_end(self, result: Any) -> None:
        pass


class VideoRecorder(FrameLog):
    """Observer: records `key` (default `images/<camera>`) every step; writes `path` at episode end."""

    def __init__(
        self, path: str | os.PathLike, camera: str = "static", key: str | None = None, fps: int = 10
    ):
        self.path = Path(path)
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise ValueError(f"video path {self.path}: expected a suffix in {VIDEO_SUFFIXES}")
        super().__init__(key or image_key(camera))
        self.fps = int(fps)
        self.written: Path | None = None

    def on_episode_start(self, obs: Mapping[str, Any], info: Mapping[str, Any]) -> None:
        super().on_episode_start(obs, info)
        self.written = None

    def on_episode_end(self, result: Any) -> None:
        if self.frames:
            self.written = write_video(self.path, self.frames, self.fps)


# ---- replayed, captioned videos ----------------------------------------------------------------------
WHITE, GREEN, RED = (255, 255, 255), (90, 230, 90), (255, 90, 90)


@dataclass(frozen=True)
class Replay:
    """A recorded episode filmed again: frames (after the reset and after each step), and its outcome."""

    frames: list[np.ndarray]
    success: bool
    length: int
    error: str | None


def replay_episode(
    env: Any,
    seed: int,
    actions: Sequence[np.ndarray],
    key: str,
    reset_options: Mapping[str, Any] | None = None,
) -> Replay:
    """Film a recorded episode again through the one rollout loop: `ReplayPolicy(actions)` from
    `env.reset(seed=seed)` (with `options=reset_options` when the original reset had options), at most
    `len(actions)` steps (fewer where the env ends the episode), with a `FrameLog` of `obs[key]`.

    `env` must be deterministic per seed (the table-top env is, action noise included), so the outcome
    matches the original episode; `success`/`length` are returned for the caller to check that."""
    log = FrameLog(key)
    r = run_episode(
        env, ReplayPolicy(actions), int(seed), [log], max_steps=len(actions), reset_options=reset_options
    )
    return Replay(log.frames, r.success, r.length, r.error)


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)  # Pillow's built-in font: no font file needed


def _wrap(text: str, font: Any, width: float) -> list[str]:
    """`text` split at spaces into lines no wider than `width` pixels (a longer single word stays whole)."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def annotate(
    frame: np.ndarray, lines: Sequence[str], colors: Sequence[tuple[int, int, int]] | None = None
) -> np.ndarray:
    """A copy of `frame` (uint8 [H,W,3]) with `lines` of text written in a darkened band across its top.

    Each line is word-wrapped to the frame width; `colors` gives one RGB colour per line (default white).
    The font is Pillow's built-in default at about 1/24 of the frame height (at least 10 px), so text
    stays legible at 256 px and up. `frame` itself is not modified."""
    arr = np.asarray(frame)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"annotate: expected a uint8 [H,W,3] frame, got {arr.dtype} {arr.shape}")
    colors = list(colors) if colors is not None else [WHITE] * len(lines)
    if len(colors) != len(lines):
        raise ValueError(f"annotate: {len(lines)} lines but {len(colors)} colors")
    h, w = arr.shape[:2]
    font, pad = _font(max(10, h // 24)), max(2, h // 64)
    rows = [(r, c) for line, c in zip(lines, colors) for r in _wrap(line, font, w - 2 * pad)]
    line_h = font.getbbox("Ag")[3] + pad
    band = min(h, pad + line_h * len(rows))
    out = arr.copy()  # `frame` itself is never touched
    out[:band] = (out[:band].astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken behind the text
    image = Image.fromarray(out)
    draw = ImageDraw.Draw(image)
    for i, (row, color) in enumerate(rows):
        draw.text((pad, pad + i * line_h), row, fill=tuple(color), font=font)
    return np.array(image)  # a fresh, writable array


def caption_episode(
    frames: Sequence[np.ndarray], instruction: str, outcome: str, success: bool, hold: int = 0
) -> list[np.ndarray]:
    """Annotated copies of an episode's frames (frame t = the state after t steps): the instruction and
    "step t/T" on every frame; the last frame shows `outcome` (green if `success`, else red) instead of
    the step and is repeated `hold` more times, so the outcome stays on screen."""
    if not frames:
        return []
    total = len(frames) - 1
    out = [annotate(f, [instruction, f"step {t}/{total}"]) for t, f in enumerate(frames[:-1])]
    colors = [WHITE, GREEN if success else RED]
    last = annotate(frames[-1], [instruction, f"{outcome} at step {total}"], colors)
    return out + [last] * (1 + max(0, int(hold)))

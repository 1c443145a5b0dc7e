"""Pictures of an episode store for people to look at (`vla dataset view`): a contact sheet and one video
per episode. The contact sheet (`contact_sheet.png`) has one row per episode: a caption strip (episode,
task, outcome, length, instruction) over a few evenly spaced time steps, each tile showing every camera
side by side with its step written on it. Each episode's video (`episode_0005.mp4`) shows every camera
side by side with the instruction and the step written across the top, above a small plot of the
actions (arm deltas above, gripper command and measured gripper width below) with a cursor at the
current step. The plot is drawn once per episode with matplotlib; the cursor is painted into a copy of
it per frame, so a frame costs a resize and a copy. Text goes through `vla.eval.video.annotate`, the
videos through the one writer `vla.data.video.write_video`.

    summary = view_dataset(ViewConfig(path="outputs/demos/pick.zarr", episodes=[0, 5], out="outputs/view"))
    summary["sheet"], summary["videos"]          # paths written
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vla.core.config import ConfigError, check_number, check_path_name, register_config
from vla.core.io import atomic_write_bytes
from vla.core.types import ACTION_KEY, IMAGE_PREFIX, STATE_KEY, FeatureType
from vla.data.store import EpisodeStore
from vla.data.video import write_video
from vla.eval.video import GREEN, RED, WHITE, annotate, depth_to_rgb

SHEET_FILE = "contact_sheet.png"
VIDEO_FILE = "episode_{index:04d}.mp4"
DEFAULT_EPISODES = 4  # episodes shown when none are named
CURSOR = (230, 40, 40)
SEPARATOR = 2  # pixels between cameras (dark grey); tiles of the contact sheet are 3x further apart
MAX_FPS = 1000.0  # video frame rate bound (fps=0: the store's)


@register_config("dataset_view")
@dataclass
class ViewConfig:
    """`vla dataset view STORE`: a contact sheet PNG and one mp4 per episode, written to `out`."""

    path: str = ""  # the episode store (positional)
    episodes: list[int] | None = None  # store episode indices (-1 = the last); null = the first 4
    out: str = ""  # output directory; "" = outputs/view/<store name>
    cameras: list[str] | None = None  # keys shown side by side (images/*, depth/*); null = every images/*
    frames: int = 6  # time steps per episode on the contact sheet, evenly spaced, first and last included
    thumb: int = 96  # contact-sheet tile height in pixels (per camera)
    size: int = 224  # video camera height in pixels (every camera is resized to it)
    video: bool = True  # false: the contact sheet only
    fps: float = 0.0  # video frame rate; 0 = the store's
    overwrite: bool = False  # replace an earlier view's files in a non-empty `out` (refused otherwise)


@dataclass(frozen=True)
class _Episode:
    index: int
    frames: dict[str, np.ndarray]  # camera key -> [T, H, W, 3] uint8
    actions: np.ndarray | None  # [T, D]
    action_names: list[str]
    gripper_width: np.ndarray | None  # [T], metres, from the state
    meta: dict[str, Any]

    @property
    def length(self) -> int:
        return len(next(iter(self.frames.values())))

    @property
    def outcome(self) -> tuple[str, tuple[int, int, int]]:
        success = self.meta.get("success")
        if success is None:
            return "outcome unknown", WHITE
        return ("success", GREEN) if success else ("failure", RED)


# ---- reading ----------------------------------------------------------------------------------------------
def _cameras(store: EpisodeStore, wanted: Sequence[str] | None) -> list[str]:
    shown = (FeatureType.VISUAL, FeatureType.DEPTH)
    if wanted is None:
        keys = [k for k, f in store.features.items() if f.type is FeatureType.VISUAL]
        if not keys:
            have = sorted(store.features)
            raise ConfigError(
                f"{store.path}: no camera ({IMAGE_PREFIX}*) feature to show; features are {have}", "cameras"
            )
        return sorted(keys)
    for k in wanted:
        if k not in store.features or store.features[k].type not in shown:
            cams = sorted(k for k, f in store.features.items() if f.type in shown)
            raise ConfigError(
                f"cameras: {k!r} is not an image or depth feature of {store.path}; expected {cams}", "cameras"
            )
    return list(wanted)


def _episode_indices(store: EpisodeStore, episodes: Sequence[int] | None) -> list[int]:
    n = store.num_episodes
    if n == 0:
        raise ConfigError(f"{store.path}: the store holds no episodes", "path")
    if episodes is None:
        return list(range(min(n, DEFAULT_EPISODES)))
    if not episodes:
        raise ConfigError("episodes: expected at least one episode index", "episodes")
    out = []
    for i in episodes:
        if not -n <= int(i) < n:
            msg = f"episodes: index {i} out of range; {store.path} holds {n} episodes (0-{n - 1})"
            raise ConfigError(msg, "episodes")
        out.append(int(i) % n)
    return out


def _as_rgb(frames: np.ndarray) -> np.ndarray:
    """[T,H,W,3] uint8 as is; depth [T,H,W] or [T,H,W,1] grey-mapped."""
    if frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[-1] == 3:
        return frames
    depth = frames[..., 0] if frames.ndim == 4 else frames
    return np.stack([depth_to_rgb(d) for d in depth])


def _read_episode(store: EpisodeStore, index: int, cameras: Sequence[str]) -> _Episode:
    keys = list(cameras)
    has_action, has_state = ACTION_KEY in store.features, STATE_KEY in store.features
    keys += [ACTION_KEY] * has_action + [STATE_KEY] * has_state
    data = store.episode(index, keys)
    actions, names, width = None, [], None
    if has_action:
        actions = np.asarray(data[ACTION_KEY], dtype=np.float64).reshape(len(data[ACTION_KEY]), -1)
        spec_names = store.features[ACTION_KEY].names
        names = list(spec_names) if spec_names else [f"a{j}" for j in range(actions.shape[1])]
    if has_state and "gripper_width" in (store.features[STATE_KEY].names or ()):
        col = store.features[STATE_KEY].names.index("gripper_width")
        width = np.asarray(data[STATE_KEY], dtype=np.float64)[:, col]
    frames = {k: _as_rgb(np.asarray(data[k])) for k in cameras}
    return _Episode(index, frames, actions, names, width, store.episode_meta(index))


# ---- pictures ---------------------------------------------------------------------------------------------
def _resize(frame: np.ndarray, height: int) -> np.ndarray:
    h, w = frame.shape[:2]
    if h == height:
        return frame
    width = max(1, round(w * height / h))
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.BILINEAR))


def _cameras_row(ep: _Episode, t: int, height: int) -> np.ndarray:
    """Every camera's frame at step t, resized to `height` and side by side."""
    panels = [_resize(ep.frames[k][t], height) for k in ep.frames]
    sep = np.full((height, SEPARATOR, 3), 40, np.uint8)
    return np.concatenate([x for p in panels for x in (p, sep)][:-1], axis=1)


def _caption(ep: _Episode) -> tuple[str, str, tuple[int, int, int]]:
    task = ep.meta.get("task")
    head = f"episode {ep.index}" + (f" | {task}" if task else "")
    outcome, color = ep.outcome
    return head, f"{outcome} | {ep.length} steps", color


def sample_steps(length: int, count: int) -> list[int]:
    """`count` evenly spaced steps of an episode of `length` frames, first and last included (fewer when
    the episode is shorter)."""
    if length <= 0 or count <= 0:
        return []
    return sorted({int(round(x)) for x in np.linspace(0, length - 1, min(count, length))})


def contact_sheet(episodes: Sequence[_Episode], frames: int, thumb: int) -> np.ndarray:
    """One row per episode: a caption strip over `frames` tiles (every camera side by side, the step on
    each). Rows of shorter episodes are padded with black to the widest row."""
    rows = []
    for ep in episodes:
        tiles = [annotate(_cameras_row(ep, t, thumb), [f"t={t}"]) for t in sample_steps(ep.length, frames)]
        gap = np.zeros((thumb, 3 * SEPARATOR, 3), np.uint8)
        strip = np.concatenate([x for tile in tiles for x in (tile, gap)][:-1], axis=1)
        head, outcome, color = _caption(ep)
        instruction = str(ep.meta.get("instruction", ""))
        band = np.zeros((max(18, thumb // 5), strip.shape[1], 3), np.uint8)
        text = f"{head} | {outcome} | {instruction}"
        rows.append(np.concatenate([annotate(band, [text], [color]), strip], axis=0))
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows]
    return np.concatenate(padded, axis=0)[:-4]


def _plot(ep: _Episode, width: int, height: int) -> tuple[np.ndarray, list[tuple[int, int, Any]]]:
    """The episode's actions and gripper as an RGB image [height, width, 3], and for each axes its pixel
    rows (top, bottom) and a function step -> pixel column, for the cursor."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / 100, height / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    steps = np.arange(ep.length)
    grip = ep.action_names.index("gripper") if "gripper" in ep.action_names else None
    arm = [j for j in range(len(ep.action_names)) if j != grip]
    panels = (["arm"] if arm and ep.actions is not None else []) + (
        ["gripper"] if (grip is not None and ep.actions is not None) or ep.gripper_width is not None else []
    )
    if not panels:
        return np.full((height, width, 3), 255, np.uint8), []
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels):
        ax.tick_params(labelsize=6, pad=1)
        ax.grid(alpha=0.3, linewidth=0.5)
        if panel == "arm":
            for j in arm:
                ax.plot(steps, ep.actions[:, j], linewidth=0.9, label=ep.action_names[j])
            ax.set_ylabel("action", fontsize=7)
            ax.legend(
                fontsize=5,
                ncol=min(6, len(arm)),
                loc="upper center",
                frameon=False,
                bbox_to_anchor=(0.5, 1.3),
                handlelength=1.0,
                columnspacing=0.8,
            )
        else:
            if grip is not None and ep.actions is not None:
                ax.plot(steps, ep.actions[:, grip], color="black", linewidth=0.9, label="command (1 = open)")
                ax.set_ylim(-0.1, 1.1)
            ax.set_ylabel("gripper cmd", fontsize=7)
            if ep.gripper_width is not None:
                twin = ax.twinx() if grip is not None and ep.actions is not None else ax
                twin.plot(
                    steps, ep.gripper_width * 1000, color="tab:green", linewidth=0.9, label="width (mm)"
                )
                twin.tick_params(labelsize=6, pad=1, colors="tab:green")
                if twin is not ax:
                    twin.set_ylabel("width mm", fontsize=6, color="tab:green")
            ax.set_xlabel("step", fontsize=7, labelpad=1)
    axes[-1].set_xlim(0, max(1, ep.length - 1))
    fig.subplots_adjust(left=0.13, right=0.89, top=0.88, bottom=0.17, hspace=0.4)
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    h = image.shape[0]
    cursors = []
    for ax in axes:
        box = ax.get_window_extent()
        top, bottom = int(round(h - box.y1)), int(round(h - box.y0))
        to_px = ax.transData.transform
        cursors.append((max(0, top), min(h, bottom), lambda t, f=to_px: int(round(f((t, 0.0))[0]))))
    return image, cursors


def episode_frames(ep: _Episode, size: int) -> list[np.ndarray]:
    """The video frames of one episode: every camera side by side (instruction, step and outcome written
    across the top) above the action plot, whose cursor marks the current step."""
    width = _cameras_row(ep, 0, size).shape[1]
    plot, cursors = _plot(ep, max(width, 320), max(120, size * 3 // 4))
    instruction = str(ep.meta.get("instruction", ""))
    head, outcome, color = _caption(ep)
    out = []
    for t in range(ep.length):
        last = t == ep.length - 1
        status = f"{head} | step {t}/{ep.length - 1}" + (f" | {outcome}" if last else "")
        cams = annotate(_cameras_row(ep, t, size), [instruction, status], [WHITE, color if last else WHITE])
        if cams.shape[1] < plot.shape[1]:  # narrow cameras: centre them over the plot
            left = (plot.shape[1] - cams.shape[1]) // 2
            cams = np.pad(cams, ((0, 0), (left, plot.shape[1] - cams.shape[1] - left), (0, 0)))
        panel = plot.copy()
        for top, bottom, to_px in cursors:
            x = to_px(t)
            panel[top:bottom, max(0, x - 1) : x + 2] = CURSOR  # 3 px: survives 4:2:0 chroma
        out.append(np.concatenate([cams, panel], axis=0))
    return out


# ---- the command's work -----------------------------------------------------------------------------------
def _prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty `out` unless `overwrite`; with it, remove an earlier view's own files only."""
    if out.is_file():
        raise ConfigError(f"out={out} is a file; expected a directory", "out")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(
                f"out={out} is not empty; pass overwrite=true to replace an earlier view", "out"
            )
        for old in [out / SHEET_FILE, *out.glob("episode_*.mp4")]:
            old.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def view_dataset(cfg: ViewConfig) -> dict[str, Any]:
    """Write the contact sheet and (with `cfg.video`) one mp4 per episode; return what was written."""
    if not cfg.path:
        raise ConfigError("missing value for 'path'", key="path", kind="missing")
    if cfg.frames < 1 or cfg.thumb < 8 or cfg.size < 16:
        got = f"frames={cfg.frames} thumb={cfg.thumb} size={cfg.size}"
        raise ConfigError(f"expected frames >= 1, thumb >= 8 and size >= 16; got {got}", "frames")
    check_number(cfg.fps, "fps", 0, MAX_FPS)  # 0: the store's
    if cfg.cameras is not None and not cfg.cameras:
        raise ConfigError("cameras: expected at least one camera (null = every images/* feature)", "cameras")
    check_path_name(cfg.path, "path")
    check_path_name(cfg.out, "out")
    if not (Path(cfg.path) / "zarr.json").is_file():
        raise ConfigError(f"episode store not found (no zarr.json): {cfg.path}", "path")
    t0 = time.perf_counter()
    with EpisodeStore.open(cfg.path) as store:
        cameras = _cameras(store, cfg.cameras)
        indices = _episode_indices(store, cfg.episodes)
        fps = cfg.fps or store.fps
        out = Path(cfg.out or Path("outputs") / "view" / Path(str(store.path).rstrip("/")).stem)
        _prepare_out(out, cfg.overwrite)
        episodes = [_read_episode(store, i, cameras) for i in indices]
    sheet = contact_sheet(episodes, cfg.frames, cfg.thumb)
    png = _png_bytes(sheet)
    sheet_path = atomic_write_bytes(out / SHEET_FILE, png)
    videos = []
    if cfg.video:
        for ep in episodes:
            path = out / VIDEO_FILE.format(index=ep.index)
            videos.append(str(write_video(path, episode_frames(ep, cfg.size), fps=max(1, round(fps)))))
    return {
        "store": str(cfg.path),
        "out": str(out),
        "episodes": indices,
        "cameras": cameras,
        "sheet": str(sheet_path),
        "sheet_size": [int(sheet.shape[0]), int(sheet.shape[1])],
        "videos": videos,
        "frames": {ep.index: ep.length for ep in episodes},
        "wall_s": time.perf_counter() - t0,
    }


def _png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)
    return buf.getvalue()

"""The windows sampler: a torch Dataset of (observation history, future action chunk) windows.

One sample per frame t of the selected episodes (t is the "current" step):

    <obs key>        [n_obs, ...]     frames t-n_obs+1 .. t     (images uint8 [n_obs, H, W, 3])
    action           [n_action, D]    frames t .. t+n_action-1
    obs_is_pad       [n_obs] bool     True where the history ran past the episode start (first frame repeated)
    action_is_pad    [n_action] bool  True where the chunk ran past the episode end (last action repeated)
    instruction      str              the episode's instruction
    episode_index, frame_index        int
    goal/points      [N, 3] float32   the episode's goal cloud (with spec.goal_cloud; stored once per
    goal/colors      [N, 3] uint8     episode beside the store, vla.pointcloud.episode_clouds)

`WindowSpec` (a small dataclass the policy config holds) declares n_obs, n_action, which keys and an
optional image resize. The dataset stores only the path and spec: each DataLoader worker (or training
rank) opens the store read-only on first use and keeps the low-dim keys in memory. Image frames of the
selected episodes are decoded once into memory when they fit in `cache_mb` (the demo's 600 episodes of
two 64-px cameras: 236 MB), so a sample is an index, not a file read and a decompression; larger
selections are read per sample through the fast per-frame `FrameReader`. Decoding and resizing run in
the worker, not the main process.

    ds = WindowDataset("demos.zarr", WindowSpec(n_obs=2, n_action=8, image_size=[96, 96]), split="train")
    loader = DataLoader(ds, batch_size=64, shuffle=True, num_workers=2)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from vla.core.types import ACTION_KEY, GOAL_COLORS_KEY, GOAL_POINTS_KEY, FeatureType
from vla.data.chunks import FrameReader
from vla.data.store import EpisodeStore, is_frame_feature
from vla.pointcloud.episode_clouds import EpisodeClouds, has_episode_clouds

_RESIZED = (FeatureType.VISUAL, FeatureType.DEPTH, FeatureType.SEGMENTATION)


@dataclass
class WindowSpec:
    """What one training sample holds (held by a policy's config)."""

    n_obs: int = 1  # observation history length, current step included
    n_action: int = 1  # action chunk length, current step first
    obs_keys: list[str] | None = None  # None: every feature except the action
    action_key: str = ACTION_KEY
    image_size: list[int] | None = None  # [H, W] to resize visual/depth/seg frames to, None keeps size
    goal_cloud: str | None = None  # None; or the episode goal cloud per sample: auto | goal | final

    def check(self) -> None:
        if self.n_obs < 1 or self.n_action < 1:
            raise ValueError(
                f"WindowSpec: n_obs and n_action must be >= 1, got {self.n_obs}, {self.n_action}"
            )
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) < 1):
            raise ValueError(f"WindowSpec: image_size must be [H, W] with H, W >= 1, got {self.image_size}")
        if self.goal_cloud not in (None, "auto", "goal", "final"):
            raise ValueError(
                f"WindowSpec: goal_cloud must be null, auto, goal or final, got {self.goal_cloud!r}"
            )


def window_indices(t: int, start: int, end: int, n_obs: int, n_action: int) -> tuple[np.ndarray, ...]:
    """Clamped frame indices and pad masks for current frame t in episode [start, end).

    Returns obs_idx [n_obs], obs_is_pad [n_obs], act_idx [n_action], action_is_pad [n_action].
    """
    obs = np.arange(t - n_obs + 1, t + 1)
    act = np.arange(t, t + n_action)
    return np.maximum(obs, start), obs < start, np.minimum(act, end - 1), act >= end


def resize_frames(x: torch.Tensor, size: Sequence[int], kind: FeatureType) -> torch.Tensor:
    """Resize frames [N, H, W(, C)] to size [h, w]: bilinear+antialias for images, nearest otherwise."""
    h, w = int(size[0]), int(size[1])
    if tuple(x.shape[1:3]) == (h, w):
        return x
    chw = x.permute(0, 3, 1, 2) if x.ndim == 4 else x[:, None]  # [N, C, H, W]
    if kind is FeatureType.VISUAL:
        y = F.interpolate(chw.float(), size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        y = y.round().clamp(0, 255).to(x.dtype)
    else:
        work = (
            torch.float32 if kind is FeatureType.DEPTH else torch.float64
        )  # float64 holds int32 ids exactly
        y = F.interpolate(chw.to(work), size=(h, w), mode="nearest").to(x.dtype)
    return y.permute(0, 2, 3, 1) if x.ndim == 4 else y[:, 0]


class WindowDataset(Dataset):
    """Windows over the episodes of one store (all, `episodes`, or those matching task/success/split)."""

    def __init__(
        self,
        path: str | os.PathLike,
        spec: WindowSpec | None = None,
        episodes: Sequence[int] | None = None,
        task: str | None = None,
        success: bool | None = None,
        split: str | None = None,
        cache_mb: float = 1024.0,
    ) -> None:
        self.path = os.fspath(path)
        self.cache_mb = float(cache_mb)  # decoded frames kept in memory per process, when they fit
        self.spec = spec or WindowSpec()
        self.spec.check()
        store = EpisodeStore.open(self.path)
        if self.spec.action_key not in store.features:
            raise ValueError(
                f"{self.path}: action key {self.spec.action_key!r} is not a feature {sorted(store.features)}"
            )
        keys = self.spec.obs_keys
        if keys is None:
            keys = [k for k in store.features if k != self.spec.action_key]
        for k in keys:
            if k not in store.features:
                raise ValueError(
                    f"{self.path}: obs key {k!r} is not a feature; features are {sorted(store.features)}"
                )
        self.obs_keys = list(keys)
        self.features = store.features
        chosen = store.select(task=task, success=success, split=split)
        if episodes is not None:
            allowed = set(chosen)
            chosen = [int(e) for e in episodes if int(e) in allowed]
        self.episodes = np.asarray(chosen, dtype=np.int64)
        starts, ends = store.episode_starts, store.episode_ends
        lengths = (ends - starts)[self.episodes] if len(self.episodes) else np.zeros(0, np.int64)
        # sample i -> (episode position, frame): current frames of every chosen episode, concatenated
        self._ep_of_sample = np.repeat(np.arange(len(self.episodes)), lengths)
        self._frame_of_sample = np.concatenate(
            [np.arange(starts[e], ends[e]) for e in self.episodes] or [np.zeros(0, np.int64)]
        )
        self._starts, self._ends = starts, ends
        self._instructions = [str(store.episode_meta(int(e)).get("instruction", "")) for e in self.episodes]
        self._goals = self._goal_clouds(store) if self.spec.goal_cloud else None
        self._pid: int | None = None  # per-process state, opened lazily in each worker
        self._lowdim: dict[str, np.ndarray] = {}
        self._readers: dict[str, FrameReader] = {}
        self._cached: dict[str, np.ndarray] = {}  # key -> decoded frames [F, ...] of the selected episodes
        self._cache_row: np.ndarray | None = None  # store frame index -> row of the cached arrays (-1: none)

    def _goal_clouds(self, store: EpisodeStore) -> list[tuple[np.ndarray, np.ndarray]]:
        """(points [N,3], colors [N,3]) per chosen episode: the per-episode clouds beside the store, or a
        store of the previous layout's `goal/points` frame feature (its first frame per episode)."""
        if has_episode_clouds(self.path):
            clouds = EpisodeClouds.open(store)
            return [clouds.goal(int(e), str(self.spec.goal_cloud)) for e in self.episodes]
        if GOAL_POINTS_KEY in store.features and GOAL_COLORS_KEY in store.features:
            first = [int(store.episode_starts[e]) for e in self.episodes]
            return [
                (store.read(GOAL_POINTS_KEY, f, f + 1)[0], store.read(GOAL_COLORS_KEY, f, f + 1)[0])
                for f in first
            ]
        raise ValueError(
            f"{self.path}: goal_cloud={self.spec.goal_cloud!r} but the store has no episode goal clouds "
            "(collect a goal task, or record_clouds=true for final-scene goals)"
        )

    def __len__(self) -> int:
        return int(self._frame_of_sample.shape[0])

    def frame_positions(self) -> np.ndarray:
        """[N] int64: each sample's current frame counted from its episode's first frame (0, 1, ...)."""
        return self._frame_of_sample - self._starts[self.episodes[self._ep_of_sample]]

    def current_actions(self, names: Sequence[str] | None = None) -> np.ndarray:
        """[N, D] float32: each sample's action at its current frame (the chunk's first step), all D
        dimensions or those `names` names (the store feature's names, e.g. ("dx", "dy"))."""
        spec = self.features[self.spec.action_key]
        cols = list(range(spec.shape[0]))
        if names is not None:
            missing = [n for n in names if n not in (spec.names or ())]
            if missing:
                raise ValueError(
                    f"{self.path}: action {self.spec.action_key!r} has no dimension named {missing}; its "
                    f"names are {list(spec.names or ())}"
                )
            cols = [list(spec.names).index(n) for n in names]
        actions = EpisodeStore.open(self.path).read(self.spec.action_key, 0, int(self._ends.max(initial=0)))
        return np.asarray(actions)[self._frame_of_sample][:, cols]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_pid=None, _lowdim={}, _readers={}, _cached={}, _cache_row=None)  # per worker
        return state

    def _open(self) -> None:
        store = EpisodeStore.open(self.path)
        self._lowdim, self._readers = {}, {}
        for k in [*self.obs_keys, self.spec.action_key]:
            if is_frame_feature(self.features[k]):
                self._readers[k] = store.frame_reader(k)
            else:
                self._lowdim[k] = store.read(k, 0, store.num_frames)  # [N, ...] small, kept in memory
        self._cached, self._cache_row = {}, None
        frames = np.concatenate(
            [np.arange(self._starts[e], self._ends[e]) for e in self.episodes] or [np.zeros(0, np.int64)]
        )  # every frame a window of the selected episodes can read
        per_frame = sum(int(np.prod(r.frame_shape)) * r.native_dtype.itemsize for r in self._readers.values())
        size = len(frames) * per_frame  # bytes of every image key's frames
        if self._readers and 0 < size <= self.cache_mb * 2**20:
            self._cached = {k: r.read_many(frames) for k, r in self._readers.items()}  # [F, ...] each
            self._cache_row = np.full(store.num_frames, -1, dtype=np.int64)
            self._cache_row[frames] = np.arange(len(frames))
        self._pid = os.getpid()

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} out of range [0, {len(self)})")
        if self._pid != os.getpid():
            self._open()
        pos = int(self._ep_of_sample[i])
        ep = int(self.episodes[pos])
        t = int(self._frame_of_sample[i])
        start, end = int(self._starts[ep]), int(self._ends[ep])
        obs_idx, obs_pad, act_idx, act_pad = window_indices(
            t, start, end, self.spec.n_obs, self.spec.n_action
        )
        out: dict[str, Any] = {}
        for k in self.obs_keys:
            out[k] = self._frames(k, obs_idx)
        out[self.spec.action_key] = self._frames(self.spec.action_key, act_idx)
        out["obs_is_pad"] = torch.from_numpy(obs_pad)
        out["action_is_pad"] = torch.from_numpy(act_pad)
        out["instruction"] = self._instructions[pos]
        out["episode_index"] = ep
        out["frame_index"] = t - start
        if self._goals is not None:
            pts, cols = self._goals[pos]
            out[GOAL_POINTS_KEY], out[GOAL_COLORS_KEY] = torch.from_numpy(pts), torch.from_numpy(cols)
        return out

    def _frames(self, key: str, idx: np.ndarray) -> torch.Tensor:
        if key in self._lowdim:
            return torch.from_numpy(self._lowdim[key][idx])
        if key in self._cached:
            x = torch.from_numpy(self._cached[key][self._cache_row[idx]])  # type: ignore[index]
        else:
            x = torch.from_numpy(self._readers[key].read_many(idx))
        if self.spec.image_size is not None and self.features[key].type in _RESIZED:
            x = resize_frames(x, self.spec.image_size, self.features[key].type)
        return x

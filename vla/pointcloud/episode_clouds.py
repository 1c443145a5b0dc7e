"""Per-episode point clouds next to an episode store: each episode's goal clouds, stored once.

A cloud that is fixed for a whole episode (the goal a goal task shows, the episode's final scene) is
stored once per episode, not repeated on every frame. The episode store (vla/data/store.py) keeps frame
features only, so these clouds live beside its arrays in the store directory, one compressed `.npz`
file per episode, written atomically:

    <store>/episode_clouds/<episode:06d>.npz
        goal_points   float32 [N,3]  goal_colors   uint8 [N,3]   the env's goal cloud (goal tasks only)
        final_points  float32 [N,3]  final_colors  uint8 [N,3]   the final scene (the observation after
                                                                    the last action), when recorded
        seed int64, length int64                                   which episode this file belongs to

Atomicity follows the store's own rule: the file of episode e is written *before* the store commits e
(it appends episodes in order, so e = the store's episode count then). A writer killed in between leaves
a file past the committed episodes, which readers ignore and the next episode overwrites. Each file
records its episode's seed and length; a file that disagrees with the store's episode metadata (episodes
deleted afterwards, say) is a ValueError, never a silently wrong goal.

    write_episode_clouds(store.path, store.num_episodes, seed, length, {"goal": (pts, cols)})
    clouds = EpisodeClouds.open(store)        # every committed episode's clouds, in memory (small)
    clouds.get(3, "goal")                     # (points [N,3] float32, colors [N,3] uint8)
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vla.core.io import atomic_write_bytes

CLOUDS_DIR = "episode_clouds"
CLOUD_NAMES = ("goal", "final")  # the env's goal cloud; the episode's final scene


def clouds_file(store_path: str | os.PathLike, episode: int) -> Path:
    return Path(store_path) / CLOUDS_DIR / f"{int(episode):06d}.npz"


def has_episode_clouds(store_path: str | os.PathLike) -> bool:
    return (Path(store_path) / CLOUDS_DIR).is_dir()


def write_episode_clouds(
    store_path: str | os.PathLike,
    episode: int,
    seed: int,
    length: int,
    clouds: Mapping[str, tuple[np.ndarray, np.ndarray]],
) -> Path:
    """Write one episode's clouds {name: (points [N,3], colors [N,3])} atomically; names in CLOUD_NAMES."""
    arrays: dict[str, np.ndarray] = {"seed": np.int64(seed), "length": np.int64(length)}
    for name, (pts, cols) in clouds.items():
        if name not in CLOUD_NAMES:
            raise ValueError(f"episode clouds: unknown cloud {name!r}; expected one of {CLOUD_NAMES}")
        p, c = np.asarray(pts), np.asarray(cols)
        if p.ndim != 2 or p.shape[1] != 3 or c.shape != p.shape or not np.all(np.isfinite(p)):
            raise ValueError(
                f"episode clouds: {name} must be finite points [N,3] with colours [N,3], got "
                f"{p.shape} / {c.shape}"
            )
        arrays[f"{name}_points"] = p.astype(np.float32)
        arrays[f"{name}_colors"] = np.clip(c, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(clouds_file(store_path, episode), buf.getvalue())


class EpisodeClouds:
    """The per-episode clouds of every committed episode of one store, loaded into memory."""

    def __init__(self, path: Path, clouds: list[dict[str, np.ndarray]]) -> None:
        self.path, self._clouds = path, clouds

    @classmethod
    def open(cls, store: Any) -> EpisodeClouds:
        """Read and check the files of `store` (an EpisodeStore); episodes without a file hold nothing."""
        path = Path(store.path)
        out: list[dict[str, np.ndarray]] = []
        for e in range(store.num_episodes):
            f = clouds_file(path, e)
            if not f.is_file():
                out.append({})
                continue
            with np.load(f) as z:
                data = {k: z[k] for k in z.files}
            meta = store.episode_meta(e)
            length = int(store.episode_slice(e).stop - store.episode_slice(e).start)
            if int(data["length"]) != length or int(data["seed"]) != int(meta.get("seed", data["seed"])):
                raise ValueError(
                    f"{f}: belongs to an episode of seed {int(data['seed'])} and length "
                    f"{int(data['length'])}, but episode {e} of the store has seed {meta.get('seed')} and "
                    f"length {length} (episodes deleted after recording?)"
                )
            out.append(data)
        return cls(path, out)

    def __len__(self) -> int:
        return len(self._clouds)

    def names(self, episode: int) -> list[str]:
        return [n for n in CLOUD_NAMES if f"{n}_points" in self._clouds[episode]]

    def get(self, episode: int, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(points [N,3] float32, colors [N,3] uint8) of one episode's cloud `name`."""
        d = self._clouds[episode]
        if f"{name}_points" not in d:
            raise KeyError(
                f"{self.path}: episode {episode} has no {name!r} cloud (has {self.names(episode)}); "
                f"record it with vla collect (goal tasks store 'goal'; record_clouds=true stores 'final')"
            )
        return d[f"{name}_points"], d[f"{name}_colors"]

    def goal(self, episode: int, source: str = "auto") -> tuple[np.ndarray, np.ndarray]:
        """The goal cloud of `episode`: source "goal" (the env's), "final" (the final scene) or "auto"
        (the env's goal where the task gave one, else the final scene)."""
        if source == "auto":
            source = "goal" if "goal_points" in self._clouds[episode] else "final"
        if source not in CLOUD_NAMES:
            raise ValueError(f"goal source must be auto, goal or final, got {source!r}")
        return self.get(episode, source)

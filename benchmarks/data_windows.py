"""Benchmark: random-access window samples/s from an episode store (single process and DataLoader workers).

Builds a store of `--episodes` episodes (two 128x128 cameras whose frames are real simulator renders,
shifted a pixel per step; 15-D state, 7-D action), then measures `WindowDataset` samples/s through a
shuffled `DataLoader` (batches of 64, collated) in the main process (num_workers=0) and with 2 workers:
the median of 3 rounds of 4,000 samples each, with torch limited to one thread per process. The 1-minute
load average is reported too: the figures depend on what else runs on the machine. Prints ONE JSON line.

    python benchmarks/data_windows.py                     # 200 episodes x 50 frames, n_obs=2, n_action=8
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from vla.data.store import EpisodeStore
from vla.data.windows import WindowDataset, WindowSpec
from vla.core.types import ACTION_NAMES, STATE_NAMES, FeatureSpec, FeatureType


def rendered_frames(size: int, cameras: Sequence[str], n: int) -> dict[str, np.ndarray]:
    """`n` real first frames per camera from the simulator (pick task, seeds 0..n-1): {cam: [n, H, W, 3]}."""
    import gymnasium as gym

    import sim

    env = gym.make(sim.ENV_ID, task="pick", image_size=size, cameras=list(cameras), depth=False)
    out: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
    for seed in range(n):
        obs, _ = env.reset(seed=seed)
        for c in cameras:
            out[c].append(obs[f"images/{c}"])
    env.close()
    return {c: np.stack(v) for c, v in out.items()}


def build_store(
    path: Path, episodes: int, length: int, size: int, cameras: Sequence[str], seed: int = 0
) -> EpisodeStore:
    """A store whose frames are rendered sim images, shifted a pixel per step so every frame differs."""
    feats = {f"images/{c}": FeatureSpec(FeatureType.VISUAL, (size, size, 3), "uint8") for c in cameras}
    feats["state"] = FeatureSpec(FeatureType.STATE, (len(STATE_NAMES),), "float32", STATE_NAMES)
    feats["action"] = FeatureSpec(FeatureType.ACTION, (len(ACTION_NAMES),), "float32", ACTION_NAMES)
    store = EpisodeStore.create(path, feats, fps=10, overwrite=True)
    pool = rendered_frames(size, cameras, 16)
    rng = np.random.default_rng(seed)
    for e in tqdm(range(episodes), desc="build store", unit="ep"):
        frames = {}
        for c in cameras:
            base = pool[c][e % len(pool[c])]
            frames[f"images/{c}"] = np.stack(
                [np.roll(base, t, axis=1) for t in range(length)]
            )  # [T, H, W, 3]
        frames["state"] = rng.standard_normal((length, len(STATE_NAMES))).astype(np.float32)
        frames["action"] = rng.standard_normal((length, len(ACTION_NAMES))).astype(np.float32)
        store.append_episode(frames, {"instruction": f"task {e % 5}", "task": "bench", "split": "train"})
    return store


def measure(loader: DataLoader, samples: int, repeats: int) -> float:
    """Median samples/s over `repeats` rounds of at least `samples` samples (worker start-up excluded)."""
    it = iter(loader)
    next(it)
    rates = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while n < samples:
            try:
                batch = next(it)
            except StopIteration:
                it = iter(loader)
                continue
            n += batch["action"].shape[0]
        rates.append(n / (time.perf_counter() - t0))
    return float(np.median(rates))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--length", type=int, default=50)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--cameras", type=str, default="static,wrist")
    ap.add_argument("--n-obs", type=int, default=2)
    ap.add_argument("--n-action", type=int, default=8)
    ap.add_argument("--samples", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", type=str, default=None, help="where to build the store (default: a temp dir)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "bench.zarr"
        t0 = time.perf_counter()
        store = build_store(path, args.episodes, args.length, args.size, args.cameras.split(","))
        build_s = time.perf_counter() - t0
        spec = WindowSpec(n_obs=args.n_obs, n_action=args.n_action)
        ds = WindowDataset(path, spec)
        rates = {}
        for workers in (0, args.workers):
            loader = DataLoader(
                ds, batch_size=args.batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0
            )
            rates[workers] = measure(loader, args.samples, args.repeats)
            del loader
        result = {
            "benchmark": "data_windows",
            "episodes": store.num_episodes,
            "frames": store.num_frames,
            "image_size": args.size,
            "cameras": args.cameras.split(","),
            "n_obs": args.n_obs,
            "n_action": args.n_action,
            "store_mb": round(store.nbytes() / 1e6, 1),
            "bytes_per_frame": round(store.nbytes() / store.num_frames),
            "build_frames_per_s": round(store.num_frames / build_s),
            "samples_per_s_single": round(rates[0]),
            f"samples_per_s_{args.workers}_workers": round(rates[args.workers]),
            "repeats": args.repeats,
            "load_avg_1min": round(os.getloadavg()[0], 2),
            "batch": args.batch,
            "goal_samples_per_s": 2000,
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

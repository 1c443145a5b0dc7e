"""Benchmark: does a VLA checkpoint read the scene? Open-loop action error against a store's expert labels.

For the first `--episodes` episodes of an episode store (collect one on held-out seeds with
`vla collect task=pick_colour task.split=heldout ...`), the checkpoint's policy predicts the action at
frames `--frames` (default 0, 2, 4: the approach, where only the images tell where the target is) and the
script reports the mean |error| of the x/y translation against the expert's label, next to the labels'
own mean size (what predicting zero would score). With `--swap`, it also reports the error when each
observation gets the images of another episode: close to the real error means the images are ignored.
Prints ONE JSON line (millimetres).

    python benchmarks/action_probe.py --checkpoint outputs/demo/train --store outputs/heldout.zarr --swap
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from policies.vla import VLAPolicy
from vla.data.store import EpisodeStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--frames", default="0,2,4")
    ap.add_argument("--swap", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    policy = VLAPolicy.from_pretrained(args.checkpoint)
    cameras = policy.model.processor.cfg.cameras
    store = EpisodeStore.open(args.store)
    n = min(args.episodes, store.num_episodes)
    if n < 2:
        raise ValueError(f"{args.store}: need >= 2 episodes, found {store.num_episodes}")
    frames = [int(f) for f in args.frames.split(",")]
    episodes = [store.episode(e) for e in range(n)]
    errors, swapped, labels = [], [], []
    for e, ep in enumerate(episodes):
        instruction = store.episode_meta(e)["instruction"]
        other = episodes[(e + 1) % n]
        for t in frames:
            if t >= len(ep["action"]) or t >= len(other["action"]):
                continue
            obs = {f"images/{c}": ep[f"images/{c}"][t] for c in cameras}
            obs.update(state=ep["state"][t], instruction=instruction)
            label = ep["action"][t][:2]  # [2] x, y translation
            policy.reset()
            errors.append(np.abs(policy.select_action(obs)[:2] - label))
            labels.append(np.abs(label))
            if args.swap:
                fake = {**obs, **{f"images/{c}": other[f"images/{c}"][t] for c in cameras}}
                policy.reset()
                swapped.append(np.abs(policy.select_action(fake)[:2] - label))

    def mm(rows: list[np.ndarray]) -> list[float] | None:
        return [round(float(v) * 1000, 1) for v in np.mean(rows, axis=0)] if rows else None

    print(
        json.dumps(
            {
                "benchmark": "action_probe",
                "checkpoint": args.checkpoint,
                "store": args.store,
                "episodes": n,
                "frames": frames,
                "samples": len(errors),
                "xy_error_mm": mm(errors),
                "xy_label_size_mm": mm(labels),
                "xy_error_other_images_mm": mm(swapped),
            }
        )
    )


if __name__ == "__main__":
    main()

"""Capture and restore every random number generator a training run touches, for bit-exact resume.

A resumed run must draw the same dropout masks, the same data order and the same augmentations as the
uninterrupted run. This snapshots Python's `random`, NumPy's legacy global generator, torch's CPU
generator and (when present) every CUDA generator into plain tensors and lists, which
`torch.save`/`torch.load(weights_only=True)` handle without pickling arbitrary objects.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - libraries still draw from the legacy global
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    py = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002
    state: dict[str, Any] = {
        "python_version": py[0],
        "python_state": torch.tensor(py[1], dtype=torch.int64),
        "python_gauss": py[2] if py[2] is not None else float("nan"),
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    gauss = state["python_gauss"]
    random.setstate(
        (
            int(state["python_version"]),
            tuple(int(v) for v in state["python_state"].tolist()),
            None if gauss != gauss else float(gauss),  # NaN encodes "no cached gauss"
        )
    )
    np.random.set_state(  # noqa: NPY002
        (
            "MT19937",
            state["numpy_keys"].numpy().astype(np.uint32),
            int(state["numpy_pos"]),
            int(state["numpy_has_gauss"]),
            float(state["numpy_gauss"]),
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

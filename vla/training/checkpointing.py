"""Checkpoint directories of a training run: atomic writes, a `latest` pointer, keep-last-k, resume.

    <out>/checkpoints/step_00000500/   model files (written by the model's own save function: the
                                       project's one format, `config.json`, `model.safetensors`, ...)
                                       + train_state.pt (optimiser, scheduler, step, RNG, EMA; resume only)
    <out>/checkpoints/latest           text file naming the newest complete checkpoint

Each checkpoint directory is filled in a temporary sibling and renamed into place (vla.core.io), then the
`latest` pointer is replaced atomically, then old checkpoints beyond `keep_last` are deleted. A run killed
at any moment leaves the previous checkpoint intact and `latest` pointing at a complete directory.
`train_state.pt` holds only tensors, numbers and strings and is read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vla.core.io import atomic_directory, atomic_write_text

TRAIN_STATE = "train_state.pt"
_STEP_DIR = re.compile(r"^step_(\d{8})$")


class CheckpointManager:
    def __init__(self, root: str | Path, keep_last: int = 2):
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.root = Path(root)
        self.keep_last = int(keep_last)

    def step_dirs(self) -> list[Path]:
        """Complete checkpoint directories, oldest first."""
        if not self.root.is_dir():
            return []
        dirs = [p for p in self.root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name)]
        return sorted((p for p in dirs if (p / TRAIN_STATE).is_file()), key=lambda p: p.name)

    def latest(self) -> Path | None:
        pointer = self.root / "latest"
        if pointer.is_file():
            cand = self.root / pointer.read_text().strip()
            if (cand / TRAIN_STATE).is_file():
                return cand
        dirs = self.step_dirs()
        return dirs[-1] if dirs else None

    def save(self, step: int, write_model: Callable[[Path], None], train_state: dict[str, Any]) -> Path:
        """Write one checkpoint atomically; returns its directory."""
        target = self.root / f"step_{step:08d}"
        with atomic_directory(target) as tmp:
            write_model(tmp)
            torch.save(train_state, tmp / TRAIN_STATE)
        atomic_write_text(self.root / "latest", target.name + "\n")
        for old in self.step_dirs()[: -self.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        return target

    @staticmethod
    def load_train_state(directory: str | Path) -> dict[str, Any]:
        path = Path(directory) / TRAIN_STATE
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {directory} has no {TRAIN_STATE}: it cannot be resumed")
        return torch.load(path, map_location="cpu", weights_only=True)

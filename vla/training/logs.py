"""Run logs: one JSON object per line (`log.jsonl`), tensorboard scalars, a loss plot, a closing summary.

On resume the JSONL file is cut back to the resumed step first, so the log of a killed-and-resumed run is
the same as that of an uninterrupted one (the property the resume test checks).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from vla.core.io import atomic_write_text


class RunLogger:
    def __init__(self, out_dir: str | Path, enabled: bool = True, resume_step: int | None = None):
        self.out_dir = Path(out_dir)
        self.enabled = enabled
        self.path = self.out_dir / "log.jsonl"
        self._tb = None
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            atomic_write_text(self.path, "")
        elif self.path.is_file():
            keep = [r for r in self.read() if int(r.get("step", 0)) <= resume_step]
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.out_dir / "tb"))
        except ImportError:  # tensorboard is a declared dependency; jsonl still works without it
            self._tb = None

    def log(self, step: int, split: str, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": int(step), "split": split, **{k: float(v) for k, v in metrics.items()}}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(f"{split}/{k}", float(v), int(step))

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()

    def plot(self, keys: tuple[str, ...] = ("loss",)) -> Path | None:
        """Write `loss.png`: each key per step, train and val; returns the path (None if nothing logged)."""
        rows = self.read()
        if not self.enabled or not rows:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for split in ("train", "val"):
            for key in keys:
                pts = [(r["step"], r[key]) for r in rows if r["split"] == split and key in r]
                pts = [(s, v) for s, v in pts if math.isfinite(v)]
                if pts:
                    ax.plot(*zip(*pts), label=f"{split} {key}", marker="o" if split == "val" else None)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        out = self.out_dir / "loss.png"
        fig.savefig(out, dpi=100)
        plt.close(fig)
        return out

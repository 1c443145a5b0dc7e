"""A toy model and dataset for trainer tests, runnable as a script (kill/resume and torchrun tests).

python tests/vla/training/toy.py OUT STEPS [--kill-at N] [--resume] [--batch B] [--ema D]
    [--nan-at N] [--dropout P]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import torch
from torch import nn
from torch.utils.data import Dataset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))

from vla.training.trainer import Trainer, TrainerConfig  # noqa: E402


class ToyData(Dataset):
    """y = x @ W_true + noise; 256 fixed samples of x [8] -> y [4]."""

    def __init__(self, n: int = 256, offset: int = 0):
        g = torch.Generator().manual_seed(1234)
        x = torch.randn(512, 8, generator=g)
        y = x @ torch.randn(8, 4, generator=g) + 0.01 * torch.randn(512, 4, generator=g)
        self.x, self.y = x[offset : offset + n], y[offset : offset + n]

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


class ToyModel(nn.Module):
    """A 2-layer MLP with dropout (so the RNG matters for exact resume); `kill_at`/`nan_at` for tests."""

    def __init__(self, kill_at: int = -1, nan_at: int = -1, dropout: float = 0.1):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Dropout(dropout))
        self.head = nn.Linear(32, 4)
        self.kill_at, self.nan_at, self.calls = kill_at, nan_at, 0

    def components(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "head": self.head}

    def forward(self, batch):
        if self.training:
            self.calls += 1
            if self.calls == self.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)  # a real kill, mid-run, no clean-up
        pred = self.head(self.encoder(batch["x"]))  # [B, 4]
        loss = ((pred - batch["y"]) ** 2).mean()
        if self.training and self.calls == self.nan_at:
            loss = loss * float("nan")
        return {"loss": loss, "mae": (pred - batch["y"]).abs().mean()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("steps", type=int)
    ap.add_argument("--kill-at", type=int, default=-1)
    ap.add_argument("--nan-at", type=int, default=-1)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--ema", type=float, default=0.0)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--strategy", default="auto")
    ap.add_argument("--accum", type=int, default=1)
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    model = ToyModel(kill_at=a.kill_at, nan_at=a.nan_at, dropout=a.dropout)
    cfg = TrainerConfig(
        steps=a.steps,
        batch_size=a.batch,
        lr=3e-3,
        warmup_steps=3,
        log_every=1,
        save_every=4,
        keep_last=2,
        out_dir=a.out,
        resume=a.resume,
        ema_decay=a.ema,
        progress=False,
        strategy=a.strategy,
        grad_accum=a.accum,
    )
    result = Trainer(cfg).fit(model, ToyData(), val_set=ToyData(32, offset=256))
    return 0 if result.status == "done" else 3


if __name__ == "__main__":
    sys.exit(main())

"""Training and evaluation of the goal-imagination model on a `GoalSet` (CPU-sized; any torch device).

    losses = train_goal_diffusion(model, goals, steps=2000, batch_size=16, lr=1e-3, seed=0)
    report = evaluate_goals(model, heldout, steps=50, tau=0.01)
    # {"imagined": {"chamfer": ..., "f_score": ...}, "copy_initial": {...}, "episodes": E}

Training samples minibatches of (initial cloud, instruction, goal cloud) triples with replacement from a
seeded generator, optimises the DDPM noise-prediction loss with AdamW and a linear warm-up, and shows a
progress bar. Evaluation samples one imagined goal per triple and scores it against the true goal by
Chamfer distance and F-score (xyz only), next to the copy-the-initial-cloud baseline (the scene unchanged).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vla.models.goal_diffusion import GoalDiffusion, align_goal_to_initial
from vla.pointcloud.goals import GoalSet
from vla.pointcloud.metrics import chamfer_distance, f_score


def goal_tensors(goals: GoalSet, use_color: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(initial [E,N,C], goal [E,N,C]) float32 tensors, C = 3 or 6 (rgb scaled to [0, 1])."""

    def one(points: np.ndarray, colors: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
        if use_color:
            x = torch.cat([x, torch.from_numpy(colors.astype(np.float32) / 255.0)], dim=-1)
        return x

    return one(goals.initial_points, goals.initial_colors), one(goals.goal_points, goals.goal_colors)


def train_goal_diffusion(
    model: GoalDiffusion,
    goals: GoalSet,
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    warmup: int = 50,
    progress: bool = True,
) -> list[float]:
    """Optimise `model` in place on `goals` for `steps` minibatches; returns the loss per step."""
    if goals.num_points != model.cfg.num_points:
        raise ValueError(
            f"goal set has N={goals.num_points} points per cloud but the model expects {model.cfg.num_points}"
        )
    if steps <= 0 or batch_size <= 0:
        raise ValueError(f"train_goal_diffusion: steps and batch_size must be > 0, got {steps}, {batch_size}")
    device = next(model.parameters()).device
    initial, goal = goal_tensors(goals, model.cfg.use_color)
    if model.cfg.prediction == "displacement":  # goal point i must be where initial point i went
        goal = align_goal_to_initial(initial, goal, model.cfg.align_radius)
    initial, goal = initial.to(device), goal.to(device)
    texts = [str(s) for s in goals.instruction]
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, warmup)))
    model.train()
    losses: list[float] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, desc="goal diffusion", unit="step")
    for _ in range(steps):
        idx = torch.randint(0, len(goals), (batch_size,), generator=gen)
        loss = model.loss(goal[idx], initial[idx], [texts[i] for i in idx.tolist()], generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
    if bar is not None:
        bar.close()
    model.eval()
    return losses


def imagine(
    model: GoalDiffusion,
    goals: GoalSet,
    steps: int = 50,
    seed: int = 0,
    batch_size: int = 16,
    strength: float = 1.0,
    snap: float = 0.0,
) -> np.ndarray:
    """Imagined goal clouds [E,N,C] (metres; rgb in [0, 1] with use_color) for every triple of `goals`."""
    device = next(model.parameters()).device
    initial, _ = goal_tensors(goals, model.cfg.use_color)
    texts = [str(s) for s in goals.instruction]
    out = []
    for s in range(0, len(goals), batch_size):
        batch = initial[s : s + batch_size].to(device)
        out.append(
            model.sample(
                batch, texts[s : s + batch_size], steps, seed + s, strength=strength, snap=snap
            ).cpu()
        )
    return torch.cat(out).numpy()


def evaluate_goals(
    model: GoalDiffusion,
    goals: GoalSet,
    steps: int = 50,
    tau: float = 0.01,
    seed: int = 0,
    strength: float = 1.0,
    snap: float = 0.0,
) -> dict[str, Any]:
    """Chamfer / F-score@tau of imagined goals vs. the true goals, and of the copy-initial baseline."""
    imagined = imagine(model, goals, steps=steps, seed=seed, strength=strength, snap=snap)  # [E,N,C]

    def score(pred: np.ndarray) -> dict[str, float]:
        cd = chamfer_distance(pred, goals.goal_points).numpy()
        fs = f_score(pred, goals.goal_points, tau).numpy()
        return {"chamfer": float(cd.mean()), "chamfer_std": float(cd.std()), "f_score": float(fs.mean())}

    return {
        "episodes": len(goals),
        "tau": tau,
        "imagined": score(imagined[..., :3]),
        "copy_initial": score(goals.initial_points),
        "imagined_clouds": imagined,
    }

"""Goal imagination (3D-VLA's second stage): a Point-E style diffusion model of the goal point cloud.

Given the initial cloud [B,N,C] (C = 3 xyz, or 6 with rgb) and the instruction, it samples N goal points:

    model = GoalDiffusion(GoalDiffusionConfig(num_points=256))
    loss = model.loss(goal, initial, ["stack the red cube on the blue cube"])       # DDPM epsilon MSE
    imagined = model.sample(initial, instructions, steps=50, seed=0)                # [B,N,C], DDIM
    model.save_pretrained("outputs/goal_ckpt"); model = GoalDiffusion.from_pretrained("outputs/goal_ckpt")

Conditioning tokens [B,G+L,W]: the initial cloud through the backbone library's point encoder
(`vla.backbones.build_point_encoder`, PointNet groups) and the instruction through the committed text
tokenizer (`builtin:tiny`) + a small transformer text encoder; the denoiser is `PointTransformer` over the
noisy goal points. Clouds are normalised by a fixed `center`/`scale` (metres) into roughly [-1, 1] and
colours to [-1, 1]; `sample` returns metres (and rgb in [0, 1]). Noise schedule: cosine (Nichol & Dhariwal)
over `timesteps`; sampling: DDIM (eta = 0 deterministic for a seed) with `steps` <= timesteps.
Checkpoints use the project's format (`vla.models.checkpoint`, model_type "goal_diffusion").

`prediction: displacement` diffuses a displacement per initial point instead of free goal points: noisy
token i carries the embedding of initial point i, the denoiser predicts the clean displacement field, and
the goal is initial + displacement (colours move along). Training needs goals in correspondence with the
initial points (`align_goal_to_initial`, an optimal assignment). A displacement of zero is the copy-the-
initial-scene baseline, which the zero-initialised output layer starts from, so the model only has to
learn what moves.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vla.backbones.config import PointEncoderConfig
from vla.backbones.language import load_text_tokenizer
from vla.backbones.tokens import build_point_encoder
from vla.models.checkpoint import (
    CONFIG_FILE,
    GOAL_DIFFUSION_TYPE,
    Checkpoint,
    CheckpointContents,
    write_checkpoint,
)
from vla.models.point_transformer import PointTransformer

PREDICTIONS = ("epsilon", "x0", "displacement")


@dataclass
class GoalDiffusionConfig:
    """Architecture and normalisation of a goal-cloud diffusion model."""

    num_points: int = 256
    use_color: bool = False  # channels 6 (xyz + rgb) instead of 3
    width: int = 128
    depth: int = 4
    heads: int = 4
    points: PointEncoderConfig = field(
        default_factory=lambda: PointEncoderConfig(name="pointnet", num_groups=32, group_size=16, width=64)
    )
    initial_point_tokens: bool = True  # also give the denoiser every initial point as a token (copyable)
    tokenizer: str = "builtin:tiny"
    text_max_tokens: int = 24
    text_layers: int = 1
    timesteps: int = 1000
    prediction: str = "x0"  # x0 (clean cloud) | epsilon (DDPM, Point-E) | displacement (of initial points)
    center: list[float] = field(default_factory=lambda: [0.5, 0.0, 0.05])
    scale: float = 0.25  # metres per unit after normalisation
    align_radius: float = 0.0  # displacement targets: 0 = optimal assignment, > 0 see align_goal_to_initial

    @property
    def channels(self) -> int:
        return 6 if self.use_color else 3


def goal_config_from_dict(data: dict[str, Any], where: str = "goal diffusion config") -> GoalDiffusionConfig:
    """Plain dict (YAML, config.json) -> GoalDiffusionConfig; unknown keys are a ValueError naming them."""
    data = {k: v for k, v in dict(data).items() if k != "defaults"}
    known = {f.name for f in dataclasses.fields(GoalDiffusionConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; expected a subset of {sorted(known)}")
    pts = dict(data.pop("points", None) or {})
    pknown = {f.name for f in dataclasses.fields(PointEncoderConfig)}
    if set(pts) - pknown:
        raise ValueError(f"{where}.points: unknown keys {sorted(set(pts) - pknown)}")
    base = GoalDiffusionConfig(**data)
    return dataclasses.replace(base, points=PointEncoderConfig(**{**dataclasses.asdict(base.points), **pts}))


def cosine_alpha_bar(timesteps: int) -> torch.Tensor:
    """Cumulative signal level alpha_bar [T] of the cosine schedule (float64)."""
    s = 0.008
    t = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, dim=0)


class TextEncoder(nn.Module):
    """Instruction strings -> tokens [B,L,W] and mask [B,L] (committed BPE tokenizer + transformer)."""

    def __init__(self, tokenizer: Any, width: int, max_tokens: int, layers: int, heads: int) -> None:
        super().__init__()
        self.tokenizer, self.max_tokens = tokenizer, max_tokens
        self.embed = nn.Embedding(len(tokenizer), width)
        self.pos = nn.Parameter(torch.zeros(max_tokens, width))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            width, heads, 2 * width, 0.0, "gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False) if layers > 0 else None

    def forward(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        )
        ids, mask = enc["input_ids"].to(self.pos.device), enc["attention_mask"].to(self.pos.device).bool()
        h = self.embed(ids) + self.pos[: ids.shape[1]]  # [B,L,W]
        if self.blocks is not None:
            h = self.blocks(h, src_key_padding_mask=~mask)
        return h, mask


class GoalDiffusion(nn.Module):
    """Conditional DDPM over goal clouds; see the module docstring."""

    def __init__(self, cfg: GoalDiffusionConfig, tokenizer: Any | None = None) -> None:
        super().__init__()
        if cfg.num_points <= 0 or cfg.timesteps < 2 or cfg.scale <= 0 or len(cfg.center) != 3:
            raise ValueError(
                f"GoalDiffusionConfig: need num_points > 0, timesteps >= 2, scale > 0, 3-D center; {cfg}"
            )
        self.cfg = cfg
        self.tokenizer = tokenizer if tokenizer is not None else load_text_tokenizer(cfg.tokenizer)
        pcfg = dataclasses.replace(cfg.points, in_features=cfg.channels)
        self.cloud_encoder = build_point_encoder(pcfg, cfg.width)
        self.text_encoder = TextEncoder(
            self.tokenizer, cfg.width, cfg.text_max_tokens, cfg.text_layers, cfg.heads
        )
        self.kind = nn.Parameter(torch.zeros(3, cfg.width))  # type embeddings: groups, text, initial points
        self.point_embed = nn.Linear(cfg.channels, cfg.width) if cfg.initial_point_tokens else None
        if cfg.prediction not in PREDICTIONS:
            raise ValueError(
                f"GoalDiffusionConfig.prediction: expected one of {PREDICTIONS}, got {cfg.prediction!r}"
            )
        self.denoiser = PointTransformer(cfg.channels, cfg.width, cfg.depth, cfg.heads)
        self.anchor_embed = nn.Linear(cfg.channels, cfg.width) if cfg.prediction == "displacement" else None
        self.register_buffer("alpha_bar", cosine_alpha_bar(cfg.timesteps).float(), persistent=False)
        self.register_buffer("center", torch.tensor(cfg.center, dtype=torch.float32), persistent=False)

    def resolved_config(self) -> GoalDiffusionConfig:
        return dataclasses.replace(
            self.cfg, points=dataclasses.replace(self.cfg.points, in_features=self.cfg.channels)
        )

    # ---- checkpoints --------------------------------------------------------------------------------
    def checkpoint_contents(self, extra_config: Mapping[str, Any] | None = None) -> CheckpointContents:
        """What a checkpoint of this model holds (model_type "goal_diffusion"); `extra_config` adds
        config.json sections (e.g. "goals": the point-cloud pipeline it was trained with)."""
        return CheckpointContents(
            state_dict=self.state_dict(),
            model_type=GOAL_DIFFUSION_TYPE,
            model_config=dataclasses.asdict(self.resolved_config()),
            sections=dict(extra_config or {}),
            text_tokenizer=self.tokenizer,
        )

    def save_pretrained(self, path: str | Path, extra_config: Mapping[str, Any] | None = None) -> Path:
        """Write the checkpoint directory atomically (vla.models.checkpoint)."""
        return write_checkpoint(path, self.checkpoint_contents(extra_config))

    @classmethod
    def from_checkpoint(cls, ck: Checkpoint) -> GoalDiffusion:
        cfg = goal_config_from_dict(ck.model_config, where=str(ck.file(CONFIG_FILE)))
        model = cls(cfg, tokenizer=ck.text_tokenizer())
        ck.load_weights(model)
        return model.eval()

    @classmethod
    def from_pretrained(cls, path: str | Path) -> GoalDiffusion:
        """Rebuild a GoalDiffusion from its checkpoint directory (vla.models.checkpoint)."""
        return cls.from_checkpoint(Checkpoint.open(path, model_type=GOAL_DIFFUSION_TYPE))

    # ---- normalisation ------------------------------------------------------------------------------
    def check_cloud(self, x: torch.Tensor, name: str) -> None:
        c = self.cfg
        if x.ndim != 3 or x.shape[1:] != (c.num_points, c.channels) or not torch.is_floating_point(x):
            raise ValueError(
                f"goal diffusion: {name} must be float [B,{c.num_points},{c.channels}] "
                f"({'xyz + rgb in [0, 1]' if c.use_color else 'xyz'}), got {tuple(x.shape)} {x.dtype}"
            )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Metres (+ rgb in [0, 1]) [B,N,C] -> model units."""
        xyz = (x[..., :3] - self.center) / self.cfg.scale
        return torch.cat([xyz, x[..., 3:] * 2 - 1], dim=-1) if self.cfg.use_color else xyz

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        xyz = x[..., :3] * self.cfg.scale + self.center
        return torch.cat([xyz, ((x[..., 3:] + 1) / 2).clamp(0, 1)], dim=-1) if self.cfg.use_color else xyz

    # ---- conditioning -------------------------------------------------------------------------------
    def condition(self, initial: torch.Tensor, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """initial cloud [B,N,C] (metres) + B instructions -> tokens [B,G+L(+N),W] and mask [B,G+L(+N)]."""
        self.check_cloud(initial, "initial")
        if len(texts) != initial.shape[0]:
            raise ValueError(f"goal diffusion: {initial.shape[0]} clouds but {len(texts)} instructions")
        x = self.normalize(initial)  # [B,N,C]
        cloud = self.cloud_encoder(x) + self.kind[0]  # [B,G,W]
        text, tmask = self.text_encoder(texts)  # [B,L,W], [B,L]
        tokens, masks = [cloud, text + self.kind[1]], [torch.ones(cloud.shape[:2], dtype=torch.bool), tmask]
        if self.point_embed is not None:
            tokens.append(self.point_embed(x) + self.kind[2])  # [B,N,W]
            masks.append(torch.ones(x.shape[:2], dtype=torch.bool))
        return torch.cat(tokens, dim=1), torch.cat([m.to(cloud.device) for m in masks], dim=1)

    # ---- training -----------------------------------------------------------------------------------
    def loss(
        self,
        goal: torch.Tensor,
        initial: torch.Tensor,
        texts: Sequence[str],
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """DDPM objective at a random timestep: MSE of the predicted noise (or clean cloud, `prediction`)."""
        self.check_cloud(goal, "goal")
        x0 = self.normalize(goal)  # [B,N,C]
        anchors = None
        if self.anchor_embed is not None:  # goal[i] corresponds to initial[i]: diffuse the displacement
            x_init = self.normalize(initial)
            x0, anchors = x0 - x_init, self.anchor_embed(x_init)  # [B,N,C], [B,N,W]
        b = x0.shape[0]
        t = torch.randint(0, self.cfg.timesteps, (b,), generator=generator, device=x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        ab = self.alpha_bar[t].view(b, 1, 1)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        cond, mask = self.condition(initial, texts)
        target = noise if self.cfg.prediction == "epsilon" else x0
        return (self.denoiser(x_t, t, cond, mask, anchors) - target).square().mean()

    # ---- sampling -----------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        initial: torch.Tensor,
        texts: Sequence[str],
        steps: int = 50,
        seed: int = 0,
        eta: float = 0.0,
        strength: float = 1.0,
        snap: float = 0.0,
    ) -> torch.Tensor:
        """DDIM sampling of goal clouds [B,N,C] (metres; rgb in [0, 1]); deterministic for (seed, eta=0).

        `strength` < 1 starts from the initial cloud noised to timestep strength x T instead of from pure
        noise (SDEdit): the sample then keeps more of the initial scene (1.0 = Point-E's sampling).
        `snap` (metres, displacement models only): points displaced less than this stay exactly where they
        were (small displacements are mostly residual noise on objects that do not move)."""
        if not 1 <= steps <= self.cfg.timesteps:
            raise ValueError(f"goal diffusion: steps must be in [1, {self.cfg.timesteps}], got {steps}")
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"goal diffusion: strength must be in (0, 1], got {strength}")
        cond, mask = self.condition(initial, texts)
        b = initial.shape[0]
        x_init = self.normalize(initial)  # [B,N,C]
        disp = self.anchor_embed is not None
        anchors = self.anchor_embed(x_init) if self.anchor_embed is not None else None
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        shape = (b, self.cfg.num_points, self.cfg.channels)
        x = torch.randn(shape, generator=gen).to(initial.device)
        t_start = round(strength * (self.cfg.timesteps - 1))
        if strength < 1.0:  # the initial cloud (displacement: zero) at noise level t_start
            ab0 = self.alpha_bar[t_start]
            x = (0.0 if disp else ab0.sqrt() * x_init) + (1 - ab0).sqrt() * x
        ts = torch.linspace(t_start, 0, steps).round().long().tolist()
        for i, t in enumerate(ts):
            ab = self.alpha_bar[t]
            ab_prev = self.alpha_bar[ts[i + 1]] if i + 1 < len(ts) else torch.ones((), device=x.device)
            out = self.denoiser(x, torch.full((b,), t, device=x.device), cond, mask, anchors)
            if self.cfg.prediction == "epsilon":
                lim = 1.0 / self.cfg.scale  # nothing lies more than 1 m from the workspace centre
                x0 = ((x - (1 - ab).sqrt() * out) / ab.sqrt()).clamp(-lim, lim)
            else:
                x0 = out
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
            sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).clamp(min=0).sqrt()
            x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
            if eta > 0 and i + 1 < len(ts):
                x = x + sigma * torch.randn(shape, generator=gen).to(x.device)
        if disp and snap > 0:
            moved = (x[..., :3] * self.cfg.scale).norm(dim=-1, keepdim=True) >= snap  # [B,N,1]
            x = x * moved
        return self.denormalize(x_init + x if disp else x)


def align_goal_to_initial(initial: torch.Tensor, goal: torch.Tensor, radius: float = 0.0) -> torch.Tensor:
    """A target goal point for every initial point: initial/goal [B,N,C] -> targets [B,N,C].

    radius 0: reorder each goal cloud by the assignment of minimum total squared xyz distance (scipy's
    linear_sum_assignment, exact; a permutation). radius > 0 (metres): an initial point whose nearest goal
    point lies within `radius` targets that point (it stays, up to resampling: the two clouds are different
    samples of the same surfaces), and only the other initial points are assigned, optimally, to the goal
    points that no initial point is near (where something moved to; leftovers take their nearest such
    point). An optimal assignment over all points also sends many points of unmoved objects across the
    scene, because FPS spreads a different number of points over each object in the two clouds."""
    from scipy.optimize import linear_sum_assignment

    if initial.shape[:2] != goal.shape[:2]:
        raise ValueError(
            f"align: initial {tuple(initial.shape)} and goal {tuple(goal.shape)} differ in B or N"
        )
    out = torch.empty_like(goal)
    for b in range(goal.shape[0]):
        d = torch.cdist(initial[b, :, :3].double(), goal[b, :, :3].double())  # [N,N] metres
        if radius <= 0:
            rows, cols = linear_sum_assignment(d.square().numpy())
            out[b, torch.from_numpy(rows)] = goal[b, torch.from_numpy(cols)]
            continue
        nn_d, nn_j = d.min(dim=1)  # nearest goal point of every initial point
        near = nn_d <= radius
        out[b, near] = goal[b, nn_j[near]]
        far_i = torch.nonzero(~near).flatten()
        if len(far_i) == 0:
            continue
        free_j = torch.nonzero(d.min(dim=0).values > radius).flatten()  # goal points nothing is near
        if len(free_j) == 0:
            free_j = torch.arange(goal.shape[1])
        sub = d[far_i][:, free_j]  # [F,G]
        rows, cols = linear_sum_assignment(sub.square().numpy())  # min(F, G) pairs
        out[b, far_i[torch.from_numpy(rows)]] = goal[b, free_j[torch.from_numpy(cols)]]
        rest = torch.ones(len(far_i), dtype=torch.bool)
        rest[torch.from_numpy(rows)] = False
        if bool(rest.any()):
            out[b, far_i[rest]] = goal[b, free_j[sub[rest].argmin(dim=1)]]
    return out

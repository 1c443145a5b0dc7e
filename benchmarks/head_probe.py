"""Benchmark: regression head vs. classification head on the same FiLM-conditioned conv features.

Its job is to say, without a language model in the way, how well a small conv net whose features are
FiLM-modulated by the instruction (a colour one-hot, or the mean of learned embeddings of the prompt's
tokens) learns the approach action of pick_colour from one camera, and whether the head decides it: an
MSE regression head (`--head mse`) or a per-axis classification head over `--bins` bins spanning the
experts' step range (`--head ce`, cross-entropy on the label's bin, or on a Gaussian of `--sigma` bins
around it). It trains for `--steps` AdamW steps on random frames of the first `--episodes` episodes of
`--train` and reports the mean |error| in millimetres of the predicted x/y action (dx, dy) on the frames
whose action is larger than 1 cm on either axis (the approach, where only the image tells where the
target is), on all loaded training episodes and on every episode of `--heldout` (layouts never trained
on); the labels' own mean size on the held-out frames (what predicting zero would score) comes alongside.
A held-out error far above the training error means the features memorised layouts rather than learned to
find the colour. Progress goes to stderr; stdout gets ONE JSON line. The stores come from
`vla collect task=pick_colour ... env.image_size=64` (and `task.split=heldout` for `--heldout`).

    OMP_NUM_THREADS=1 python benchmarks/head_probe.py --train T.zarr --heldout H.zarr  # ~2 min
    OMP_NUM_THREADS=1 python benchmarks/head_probe.py --train T.zarr --heldout H.zarr --head ce --bins 32
    OMP_NUM_THREADS=1 python benchmarks/head_probe.py --train T.zarr --heldout H.zarr --head ce --sigma 4
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from sim.experts import MAX_STEP
from sim.scene import COLOUR_NAMES
from vla.backbones.language import load_text_tokenizer
from vla.backbones.vision import spatial_softmax
from vla.data.store import EpisodeStore
from vla.processor import DEFAULT_PROMPT

MAX_TOKENS = 40  # prompt tokens kept per instruction (pick_colour prompts are shorter)
BIG_ACTION = 0.01  # metres: frames whose |dx| or |dy| exceeds this are scored
EVAL_BATCH = 512


@dataclass
class Frames:
    """Every frame of some episodes of one store, flattened over episodes."""

    images: torch.Tensor  # uint8 [N,H,W,3] the chosen camera
    state: torch.Tensor  # float32 [N,S]
    xy: torch.Tensor  # float32 [N,2] the action's dx, dy in metres
    onehot: torch.Tensor  # float32 [N,len(COLOUR_NAMES)] the instruction's colour
    tokens: torch.Tensor  # int64 [N,MAX_TOKENS] the prompt's token ids, pad-filled
    episodes: int


def colour_index(instruction: str, where: str) -> int:
    """Index in COLOUR_NAMES of the one colour the instruction names."""
    words = set(re.findall(r"[a-z]+", instruction.lower()))
    found = [i for i, name in enumerate(COLOUR_NAMES) if name in words]
    if len(found) != 1:
        what = "no known colour" if not found else "several colours"
        raise ValueError(
            f"{where}: instruction {instruction!r} names {what} (known: {', '.join(COLOUR_NAMES)})"
        )
    return found[0]


def load_frames(path: str, max_episodes: int, camera: str, tokenizer: Any) -> Frames:
    """The first `max_episodes` episodes of the store at `path` (images of `camera`, state, x/y action)."""
    if not Path(path).exists():
        raise FileNotFoundError(f"episode store not found: {path}")
    store = EpisodeStore.open(path)
    image_key = f"images/{camera}"
    if image_key not in store.features:
        cameras = sorted(k for k in store.features if k.startswith("images/"))
        raise ValueError(f"{path}: no {image_key!r} in the store (its images: {cameras or 'none'})")
    n = min(max_episodes, store.num_episodes)
    if n < 1:
        raise ValueError(
            f"{path}: no episodes to load (store has {store.num_episodes}, asked {max_episodes})"
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    images, state, xy, onehot, tokens = [], [], [], [], []
    for e in tqdm(range(n), desc=f"loading {Path(path).name}", leave=False):
        ep = store.episode(e, keys=[image_key, "state", "action"])
        length = len(ep["action"])
        instruction = store.episode_meta(e)["instruction"]
        colour = np.zeros(len(COLOUR_NAMES), np.float32)
        colour[colour_index(instruction, f"{path}: episode {e}")] = 1.0
        ids = tokenizer(DEFAULT_PROMPT.format(instruction=instruction), add_special_tokens=False)["input_ids"]
        ids = ids[:MAX_TOKENS] + [pad] * max(0, MAX_TOKENS - len(ids))
        images.append(ep[image_key])
        state.append(ep["state"].astype(np.float32))
        xy.append(ep["action"][:, :2].astype(np.float32))
        onehot.append(np.repeat(colour[None], length, 0))
        tokens.append(np.repeat(np.asarray(ids, np.int64)[None], length, 0))
    return Frames(
        images=torch.from_numpy(np.concatenate(images)),
        state=torch.from_numpy(np.concatenate(state)),
        xy=torch.from_numpy(np.concatenate(xy)),
        onehot=torch.from_numpy(np.concatenate(onehot)),
        tokens=torch.from_numpy(np.concatenate(tokens)),
        episodes=n,
    )


class FilmConvNet(nn.Module):
    """A small conv net FiLM-conditioned on the instruction, spatial-softmax keypoints, an x/y action head.

    Condition c: `onehot` -> the colour one-hot [B,6]; `prompt` -> the masked mean of learned embeddings
    of the prompt's tokens, layer-normed [B,64]. Three conv blocks (conv 3x3, GroupNorm, GELU); after each,
    per channel, x = x * (1 + gamma) + beta with (gamma, beta) = Linear(c). Then 16 keypoint maps (1x1
    conv) through spatial softmax, concatenated with the state and c, into a 256-wide MLP whose output is
    the x/y action itself (`mse`: 2 numbers, scaled to +-MAX_STEP) or 2 x `bins` logits (`ce`).
    """

    CHANNELS = (3, 16, 32, 64)
    STRIDES = (2, 2, 1)
    KEYPOINTS = 16
    EMBED = 64
    HIDDEN = 256

    def __init__(self, cond: str, head: str, bins: int, state_dim: int, vocab_size: int, pad_id: int):
        super().__init__()
        self.cond, self.head_kind, self.bins, self.pad_id = cond, head, bins, pad_id
        cond_dim = len(COLOUR_NAMES) if cond == "onehot" else self.EMBED
        self.embed = nn.Embedding(vocab_size, self.EMBED)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.convs, self.films = nn.ModuleList(), nn.ModuleList()
        for c_in, c_out, stride in zip(self.CHANNELS[:-1], self.CHANNELS[1:], self.STRIDES):
            self.convs.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(1, c_out), nn.GELU()
                )
            )
            self.films.append(nn.Linear(cond_dim, 2 * c_out))
        c_last = self.CHANNELS[-1]
        self.keypoints = nn.Conv2d(c_last, self.KEYPOINTS, 1)
        out_dim = 2 if head == "mse" else 2 * bins
        self.mlp = nn.Sequential(
            nn.Linear(self.KEYPOINTS * (c_last + 2) + state_dim + cond_dim, self.HIDDEN),
            nn.GELU(),
            nn.Linear(self.HIDDEN, out_dim),
        )

    def condition(self, onehot: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """onehot [B,6], tokens [B,L] -> c [B,6] (onehot) or [B,64] (prompt)."""
        if self.cond == "onehot":
            return onehot
        mask = (tokens != self.pad_id).float()[..., None]  # [B,L,1]
        mean = (self.embed(tokens) * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # [B,L,64] -> [B,64]
        return nn.functional.layer_norm(mean, (self.EMBED,))

    def forward(
        self, images: torch.Tensor, state: torch.Tensor, onehot: torch.Tensor, tokens: torch.Tensor
    ) -> torch.Tensor:
        """images uint8 [B,64,64,3], state [B,S] -> x/y action [B,2] (mse) or logits [B,2,bins] (ce)."""
        x = (images.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25  # [B,64,64,3] -> [B,3,64,64]
        c = self.condition(onehot, tokens)  # [B,D]
        for conv, film in zip(self.convs, self.films):
            x = conv(x)  # [B,3,64,64] -> [B,16,32,32] -> [B,32,16,16] -> [B,64,16,16]
            gamma, beta = film(c).chunk(2, -1)  # [B,D] -> [B,2C] -> [B,C], [B,C]
            x = x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]  # [B,C] -> [B,C,1,1] broadcast
        xy, pooled = spatial_softmax(x, self.keypoints(x))  # [B,16,2], [B,16,64]
        features = torch.cat([pooled.flatten(1), xy.flatten(1), state, c], 1)  # [B,16*64 + 16*2 + S + D]
        out = self.mlp(features)  # [B,2] or [B,2*bins]
        if self.head_kind == "mse":
            return out * MAX_STEP  # [B,2] metres
        return out.view(-1, 2, self.bins)  # [B,2*bins] -> [B,2,bins]


class Head:
    """Loss and decoding of the x/y action for one head kind; bins split [-MAX_STEP, MAX_STEP] evenly."""

    def __init__(self, kind: str, bins: int, sigma: float):
        self.kind, self.bins, self.sigma = kind, bins, sigma
        self.edges = torch.linspace(-MAX_STEP, MAX_STEP, bins + 1)  # [bins+1]
        self.centres = (self.edges[:-1] + self.edges[1:]) / 2  # [bins]

    def loss(self, out: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
        """out [B,2] or [B,2,bins], xy [B,2] metres -> scalar loss."""
        if self.kind == "mse":
            return ((out - xy) ** 2).mean()
        label = (torch.bucketize(xy, self.edges, right=True) - 1).clamp(0, self.bins - 1)  # [B,2] bin ids
        if self.sigma == 0:
            return nn.functional.cross_entropy(out.reshape(-1, self.bins), label.reshape(-1))  # [B*2,bins]
        distance = (
            torch.arange(self.bins)[None, None, :] - label[..., None]
        )  # [1,1,bins] - [B,2,1] -> [B,2,bins]
        soft = torch.softmax(-0.5 * (distance / self.sigma) ** 2, -1)  # [B,2,bins] Gaussian soft labels
        return -(soft * out.log_softmax(-1)).sum(-1).mean()

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        """out [B,2] or [B,2,bins] -> x/y action [B,2] metres (the most likely bin's centre for ce)."""
        return out if self.kind == "mse" else self.centres[out.argmax(-1)]


def forward(net: FilmConvNet, frames: Frames, idx: torch.Tensor | slice) -> torch.Tensor:
    return net(frames.images[idx], frames.state[idx], frames.onehot[idx], frames.tokens[idx])


@torch.no_grad()
def evaluate(net: FilmConvNet, head: Head, frames: Frames, where: str) -> tuple[list[float], list[float]]:
    """Mean |error| and mean |label| (mm, per axis) over the frames whose x or y action exceeds 1 cm."""
    net.eval()
    predictions = [
        head.decode(forward(net, frames, slice(i, i + EVAL_BATCH)))
        for i in range(0, len(frames.xy), EVAL_BATCH)
    ]
    net.train()
    pred = torch.cat(predictions)  # [N,2]
    big = frames.xy.abs().amax(1) > BIG_ACTION  # [N]
    if not big.any():
        raise ValueError(f"{where}: no frame has an x/y action above {BIG_ACTION * 1000:.0f} mm")
    error = (pred[big] - frames.xy[big]).abs().mean(0) * 1000
    size = frames.xy[big].abs().mean(0) * 1000
    return [round(float(v), 2) for v in error], [round(float(v), 2) for v in size]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True, metavar="STORE", help="pick_colour episode store, 64 px")
    ap.add_argument("--heldout", required=True, metavar="STORE", help="same, task.split=heldout")
    ap.add_argument("--episodes", type=int, default=600, help="training episodes to load")
    ap.add_argument("--camera", default="wrist")
    ap.add_argument("--cond", choices=["onehot", "prompt"], default="prompt")
    ap.add_argument("--head", choices=["mse", "ce"], default="mse")
    ap.add_argument("--bins", type=int, default=256, help="bins per axis (ce)")
    ap.add_argument(
        "--sigma", type=float, default=0.0, help="Gaussian soft-label width in bins (ce); 0: hard"
    )
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.bins < 2 or args.sigma < 0 or args.steps < 0 or args.batch < 1:
        ap.error("need --bins >= 2, --sigma >= 0, --steps >= 0, --batch >= 1")
    t0 = time.time()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    tokenizer = load_text_tokenizer("builtin:tiny")
    train = load_frames(args.train, args.episodes, args.camera, tokenizer)
    heldout = load_frames(args.heldout, 1 << 30, args.camera, tokenizer)
    if heldout.state.shape[1] != train.state.shape[1]:
        raise ValueError(
            f"{args.heldout}: state has {heldout.state.shape[1]} dims, "
            f"but {args.train} has {train.state.shape[1]}"
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    net = FilmConvNet(args.cond, args.head, args.bins, train.state.shape[1], len(tokenizer), pad)
    head = Head(args.head, args.bins, args.sigma)
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    progress = tqdm(range(args.steps), desc=f"head_probe {args.cond}/{args.head}")
    for step in progress:
        idx = torch.from_numpy(rng.integers(0, len(train.xy), args.batch))  # [batch] random frames
        loss = head.loss(forward(net, train, idx), train.xy[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            progress.set_postfix(loss=f"{loss.item():.4g}")
    train_error, _ = evaluate(net, head, train, args.train)
    heldout_error, label_size = evaluate(net, head, heldout, args.heldout)
    print(
        json.dumps(
            {
                "benchmark": "head_probe",
                "cond": args.cond,
                "head": args.head,
                "bins": args.bins,
                "sigma": args.sigma,
                "steps": args.steps,
                "camera": args.camera,
                "train_episodes": train.episodes,
                "heldout_episodes": heldout.episodes,
                "train_xy_error_mm": train_error,
                "heldout_xy_error_mm": heldout_error,
                "xy_label_size_mm": label_size,
                "wall_s": round(time.time() - t0, 1),
            }
        )
    )


if __name__ == "__main__":
    main()

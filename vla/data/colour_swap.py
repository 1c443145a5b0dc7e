"""Colour-swap augmentation: pairs of colours trade places in a training sample's images and instruction.

A policy for "stack the red cube on the blue cube" must read both colour words and bind each to a role.
From a few hundred demonstrations it can instead learn layouts: in its training scenes the cube to lift
was most often the one the camera shows at a given place, and the word says little more. This augmentation
makes the words the only cue. Each sample draws, for every configured pair of colours (red, yellow), a coin
with probability `p`; where it lands, every red pixel becomes yellow and every yellow pixel red, in every
camera and frame of the window, and the instruction's words "red" and "yellow" swap with them. The same
layout then comes with instructions that name other objects, and the same instruction with other layouts,
at no cost in demonstrations. (ROSIE and GenAug edit the scene with generative models; in simulation the
renderer already says which pixels show which colour.)

The store must hold the env's per-pixel colour numbers (`vla collect env.colour_masks=true`: a feature
`colours/<cam>` uint8 [H,W] per camera, 0 where no palette colour is drawn, k + 1 where the k-th colour of
its info["palette"] [[name, [r, g, b]], ...] is). A pixel p of base colour o becomes p + s (n - o) with
s = (p . o) / (o . o), its shading along o: a lit red face (200, 30, 30) of base (217, 31, 31) has s = 0.93
and turns into (224, 202, 25), the same shade of yellow (base (242, 217, 26)), and what p holds beside o
(a highlight, the edge of another body) stays. Worked example, pairs [[red, yellow]] and the coin landing:

    aug = ColourSwap([("red", "yellow")], palette, p=0.5, seed=0)
    out = aug([{"instruction": "stack the red cube on the blue cube",
                "images/static": rgb,            # [T,H,W,3] uint8
                "colours/static": ids}])         # [T,H,W] uint8
    out[0]["instruction"]                        # "stack the yellow cube on the blue cube"
    out[0]["images/static"]                      # red pixels yellow, yellow pixels red, the rest as they were
    "colours/static" in out[0]                   # False: the numbers are dropped after use

Which pairs keep an evaluation honest is the data's business: with this simulator's held-out rule
(colour-shape pairs with (colour index + shape index) % 3 == 0; stack pairs of colours 3 apart), swapping
colours 3 apart in sim.scene.COLOUR_NAMES (red-yellow, green-purple, blue-orange) maps every training scene
to a training scene, so no held-out pair is ever shown (configs/preset/full.yaml). Applied to a batch's
samples before the processor collates them, never at evaluation; the inputs are not changed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from vla.core.types import COLOUR_PREFIX, IMAGE_PREFIX


def check_pairs(pairs: Sequence[Sequence[str]], names: Sequence[str], where: str = "colour_swap") -> None:
    """Each pair two different palette names, no name in two pairs: else a ValueError naming `where`."""
    seen: set[str] = set()
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1]:
            raise ValueError(f"{where}: expected pairs of two different colours, got {list(pair)}")
        for name in pair:
            if name not in names:
                raise ValueError(f"{where}: {name!r} is not a palette colour ({list(names)})")
            if name in seen:
                raise ValueError(f"{where}: {name!r} is in two pairs; a colour may swap with one other only")
            seen.add(name)


class ColourSwap:
    """samples -> samples with each pair of colours swapped (probability p per pair and sample) in the
    images of every camera that has a `colours/<cam>` map and in the instruction's words."""

    def __init__(
        self,
        pairs: Sequence[Sequence[str]],
        palette: Sequence[Sequence[Any]],
        p: float = 0.5,
        seed: int = 0,
    ):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"colour_swap_p must be in [0, 1], got {p}")
        names = [str(entry[0]) for entry in palette]
        check_pairs(pairs, names)
        if not pairs:
            raise ValueError("colour_swap: expected at least one pair of colours")
        self.pairs = [(str(a), str(b)) for a, b in pairs]
        self.index = {name: k + 1 for k, name in enumerate(names)}  # name -> the number in the maps
        # base colours by map number [P+1,3] (row 0: no colour) and 1 / |o|^2 for the shading
        base = np.zeros((len(names) + 1, 3), np.float32)
        base[1:] = np.array([entry[1] for entry in palette], np.float32)
        self.base = torch.from_numpy(base)
        self.inv_norm = 1.0 / (self.base * self.base).sum(1).clamp(min=1e-6)  # [P+1]
        self.p = float(p)
        self.rng = np.random.default_rng(seed)
        words = sorted({w for pair in self.pairs for w in pair}, key=len, reverse=True)
        self.words = re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b")  # every paired colour

    def draw(self) -> list[tuple[str, str]]:
        """The pairs one sample swaps (each with probability p)."""
        return [pair for pair in self.pairs if self.rng.random() < self.p]

    def swap_words(self, text: str, swaps: Sequence[tuple[str, str]]) -> str:
        """`text` with the words of each pair (of this augmentation's pairs) exchanged (whole words)."""
        table = {**{a: b for a, b in swaps}, **{b: a for a, b in swaps}}
        return self.words.sub(lambda m: table.get(m.group(1), m.group(1)), text) if table else text

    def _lut(self, swaps: Sequence[tuple[str, str]]) -> torch.Tensor:
        """map number -> the number whose colour it takes [P+1]."""
        target = torch.arange(len(self.base))
        for a, b in swaps:
            target[self.index[a]], target[self.index[b]] = self.index[b], self.index[a]
        return target

    def swap_pixels(
        self, images: torch.Tensor, ids: torch.Tensor, swaps: Sequence[tuple[str, str]]
    ) -> torch.Tensor:
        """images [...,H,W,3] uint8, ids [...,H,W] uint8 (the colour maps) -> a recoloured copy."""
        _check_shapes(images, ids)
        return self._recolour(images[None], ids[None], self._lut(swaps)[None])[0]

    def _recolour(self, images: torch.Tensor, ids: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
        """images [N,...,H,W,3] uint8, ids [N,...,H,W], one map-number table per row lut [N,P+1] -> a
        recoloured copy (one pass over the whole batch)."""
        idx = ids.long()
        tgt = torch.gather(lut, 1, idx.flatten(1)).view_as(idx)  # [N,...,H,W] the colour each pixel takes
        moved = tgt != idx  # pixels of a swapped colour
        out = images.clone()
        if not bool(moved.any()):
            return out
        px = images[moved].float()  # [M,3]
        k, old = idx[moved], self.base[idx[moved]]  # [M], [M,3]
        shade = (px * old).sum(1) * self.inv_norm[k]  # [M] the pixel's share of its base colour
        new = px + shade[:, None] * (self.base[tgt[moved]] - old)  # [M,3]
        out[moved] = new.round().clamp(0, 255).to(images.dtype)
        return out

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = [dict(s) for s in samples]
        maps = [
            {k[len(COLOUR_PREFIX) :]: s.pop(k) for k in list(s) if k.startswith(COLOUR_PREFIX)} for s in out
        ]
        drawn = [self.draw() for _ in out]
        rows = [i for i, swaps in enumerate(drawn) if swaps]
        if not rows:
            return out
        lut = torch.stack([self._lut(drawn[i]) for i in rows])  # [N,P+1]
        for cam in {cam for i in rows for cam in maps[i]}:
            key = IMAGE_PREFIX + cam
            have = [i for i in rows if cam in maps[i] and key in out[i]]
            if not have:
                continue
            images = [torch.as_tensor(out[i][key]) for i in have]
            ids = [torch.as_tensor(maps[i][cam]) for i in have]
            for im, m in zip(images, ids):
                _check_shapes(im, m)
            if len({tuple(im.shape) for im in images}) == 1:  # one pass for the batch
                new = self._recolour(
                    torch.stack(images), torch.stack(ids), lut[[rows.index(i) for i in have]]
                )
            else:
                new = [
                    self._recolour(im[None], m[None], lut[[rows.index(i)]])[0]
                    for i, im, m in zip(have, images, ids)
                ]
            for j, i in enumerate(have):
                out[i][key] = new[j]
        for i in rows:
            if "instruction" in out[i]:
                out[i]["instruction"] = self.swap_words(str(out[i]["instruction"]), drawn[i])
        return out


def _check_shapes(images: torch.Tensor, ids: torch.Tensor) -> None:
    if images.shape[:-1] != ids.shape or images.shape[-1] != 3:
        raise ValueError(
            f"colour_swap: images {tuple(images.shape)} and colour maps {tuple(ids.shape)} do not match "
            "([...,H,W,3] and [...,H,W])"
        )

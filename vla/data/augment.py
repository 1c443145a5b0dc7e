"""Instruction augmentation for training: words of an instruction replaced by synonyms from a table.

A policy whose instructions always say "red" learns the word "red", not the colour. Replacing the colour
word by a synonym now and then (`vla train instruction_synonyms=colours`: ruby or cherry for red, navy or
sapphire for blue, sim.scene_vqa.TRAIN_COLOUR_SYNONYMS) shows the model that several words name one
colour; with a pretrained text encoder that already places "crimson" near "scarlet" and "red", the
grounding it learns can then carry to synonyms it never saw (docs/backbones.md). The table is disjoint
from the held-out words that `pick_colour_synonyms` evaluates with. Applied to a training batch's samples
before the processor collates them, never at evaluation:

    aug = InstructionSynonyms(SYNONYM_TABLES["colours"], p=0.5, seed=0)
    batch = processor.collate(aug(samples))      # new sample dicts; the inputs are not changed
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sim.scene_vqa import TRAIN_COLOUR_SYNONYMS

SYNONYM_TABLES: dict[str, Mapping[str, Sequence[str]]] = {"colours": TRAIN_COLOUR_SYNONYMS}


class InstructionSynonyms:
    """samples -> samples whose "instruction" has each table word replaced, with probability p per
    sample, by one of its synonyms (whole words, case kept lower as the tasks write them)."""

    def __init__(self, table: Mapping[str, Sequence[str]], p: float = 0.5, seed: int = 0):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"instruction synonym probability must be in [0, 1], got {p}")
        if not table or any(not syns for syns in table.values()):
            raise ValueError("instruction synonyms: the table must map each word to at least one synonym")
        self.table = {str(k): tuple(str(s) for s in v) for k, v in table.items()}
        self.p = float(p)
        self.rng = np.random.default_rng(seed)
        self.pattern = re.compile(
            r"\b(" + "|".join(map(re.escape, sorted(self.table, key=len)[::-1])) + r")\b"
        )

    def rephrase(self, text: str) -> str:
        """One instruction with every table word replaced by a random synonym of it."""
        return self.pattern.sub(lambda m: self._pick(self.table[m.group(1)]), text)

    def _pick(self, options: tuple[str, ...]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for s in samples:
            s = dict(s)
            if "instruction" in s and self.rng.random() < self.p:
                s["instruction"] = self.rephrase(str(s["instruction"]))
            out.append(s)
        return out

"""`VQADataset` (a torch Dataset over any reader's samples) and `VQACollator` (samples -> VLM inputs).

The collator builds the multi-turn text with loss only on answers:

    BOS [task tag] Question: q1 Answer: | a1 EOS | \\n Question: q2 Answer: | a2 EOS
    -100 ...........................    | ids    | -100 ...................  | ids

and transforms the images with the vision encoder's `ImageTransform`, giving the keyword arguments of
`VLM.forward`: input_ids / attention_mask / labels [B,L] (right-padded) and images [B,N,3,S,S]
(N images per sample, the same N for every sample of a batch), plus a zero state [B,S] when `state_dim`
is set (a VLA's VLM has a state encoder; VQA has no proprioception). `generation_inputs` gives the left-padded
prompt of each sample's last question (earlier turns with their answers as context) for `VLM.generate`.

    ds = VQADataset(samples, task="vqa")
    collate = VQACollator(model.tokenizer, model.vision.transform)
    batch = collate([ds[i] for i in range(8)])
    loss = model(**batch).loss
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vla.backbones.text import encode_text, pad_batch, with_answer
from vla.data.vqa.config import VQAPromptConfig
from vla.data.vqa.sample import Turn, VQASample


class VQADataset(Dataset):
    """Samples of one VQA source; items are dicts with decoded images (uint8 [H,W,3] each)."""

    def __init__(self, samples: Sequence[VQASample], task: str = "vqa", load_images: bool = True):
        if not samples:
            raise ValueError(f"VQADataset {task!r}: no samples")
        self.samples = list(samples)
        self.task = str(task)
        self.load_images = bool(load_images)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        s = self.samples[int(idx)]
        return {
            "kind": "vqa",
            "task": self.task,
            "id": s.id,
            "images": s.load_images() if self.load_images else list(s.images),
            "turns": s.turns,
            "answers": s.answers,
            "question_type": s.question_type,
        }


def encode_turns(
    tokenizer: Any,
    turns: Sequence[Turn],
    prompt: VQAPromptConfig,
    task: str = "",
    answer_last: bool = True,
) -> tuple[list[int], list[int]]:
    """Token ids and labels of a conversation: -100 on BOS/questions, ids on answers (+ EOS each).

    answer_last=False leaves the last turn's answer out (a generation prompt). Each turn is one
    `with_answer` row of vla.backbones.text, the path the VLA's robot prompts take too."""
    ids, labels = with_answer(encode_text(tokenizer, "", bos=True), [])  # BOS, unlabelled
    for i, t in enumerate(turns):
        q = prompt.format_question(t.prompt, task if i == 0 else "")
        if i > 0:
            q = prompt.turn_separator + q
        q_ids = encode_text(tokenizer, q)
        if i == len(turns) - 1 and not answer_last:
            turn = with_answer(q_ids, [])
        else:
            a_ids = encode_text(tokenizer, prompt.answer_prefix + t.answer.strip())
            turn = with_answer(q_ids, a_ids, tokenizer.eos_token_id)
        ids, labels = ids + turn[0], labels + turn[1]
    return ids, labels


@dataclass
class VQACollator:
    """Batches VQADataset items into `VLM.forward` keyword arguments (loss only on answer tokens)."""

    tokenizer: Any
    transform: Any  # vla.backbones.transforms.ImageTransform
    prompt: VQAPromptConfig = field(default_factory=VQAPromptConfig)
    use_task_tag: bool = True
    max_length: int | None = None
    state_dim: int = 0  # > 0: add a zero "state" [B, state_dim] for models with a state encoder (a VLA)

    def _pixels(self, items: Sequence[Mapping[str, Any]]) -> torch.Tensor | None:
        counts = {len(it["images"]) for it in items}
        if len(counts) != 1:
            ids = [(it["id"], len(it["images"])) for it in items]
            raise ValueError(f"VQACollator: samples in one batch need the same image count, got {ids}")
        n = counts.pop()
        if n == 0:
            return None
        frames = [np.asarray(im) for it in items for im in it["images"]]  # B*N x [H,W,3]
        for it in items:
            for im in it["images"]:
                a = np.asarray(im)
                if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
                    raise ValueError(
                        f"VQACollator: sample {it['id']!r}: expected uint8 images [H,W,3], got "
                        f"{a.dtype} {tuple(a.shape)} (set load_images=True on the dataset)"
                    )
        pixels = torch.cat([self.transform(f) for f in frames])  # [B*N,3,S,S]
        return pixels.view(len(items), n, *pixels.shape[1:])  # [B,N,3,S,S]

    def _task(self, it: Mapping[str, Any]) -> str:
        return str(it.get("task", "")) if self.use_task_tag else ""

    def _check_length(self, it: Mapping[str, Any], ids: list[int]) -> None:
        if self.max_length is not None and len(ids) > self.max_length:
            raise ValueError(
                f"VQACollator: sample {it['id']!r} has {len(ids)} tokens > max_length {self.max_length}"
            )

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """items -> input_ids/attention_mask/labels [B,L] (right-padded), images [B,N,3,S,S]."""
        if not items:
            raise ValueError("VQACollator: empty batch")
        seqs = []
        for it in items:
            ids, labels = encode_turns(self.tokenizer, it["turns"], self.prompt, self._task(it))
            self._check_length(it, ids)
            seqs.append((ids, labels))
        out = pad_batch(seqs, int(self.tokenizer.pad_token_id or 0), side="right")
        return self._add_prefix_inputs(out, items)

    def _add_prefix_inputs(self, out: dict[str, torch.Tensor], items: Sequence[Mapping[str, Any]]):
        pixels = self._pixels(items)
        if pixels is not None:
            out["images"] = pixels  # [B,N,3,S,S]
        if self.state_dim > 0:  # VQA has no proprioception: a zero state stands in
            out["state"] = torch.zeros(len(items), self.state_dim)  # [B,S]
        return out

    def generation_inputs(self, items: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Left-padded prompts up to each sample's last question: input_ids/attention_mask [B,L], images."""
        seqs = []
        for it in items:
            ids, _ = encode_turns(self.tokenizer, it["turns"], self.prompt, self._task(it), answer_last=False)
            self._check_length(it, ids)
            seqs.append((ids, None))
        b = pad_batch(seqs, int(self.tokenizer.pad_token_id or 0), side="left")
        out = {"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]}
        return self._add_prefix_inputs(out, items)

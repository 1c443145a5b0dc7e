"""The one text path of the project: token ids of prompts and answers with answer-only labels, and padding
a batch of token sequences (right for training, left for generation). The VLA processor (robot prompt +
action ids), the VQA collator (multi-turn conversations) and the VLM tests all build their rows here, and
`IGNORE_INDEX` is the one "no loss here" label.

    p = encode_text(tok, "In: What action should the robot take to lift the cube?\nOut:", bos=True)
    ids, labels = with_answer(p, action_ids, eos=tok.eos_token_id)      # labels IGNORE_INDEX on p
    ids, labels = encode_prompt_answer(tok, "Question: What colour is the block? Answer:", " red")
    batch = pad_batch([(ids, labels), ...], pad_id=tok.pad_token_id, side="right")
    batch["input_ids"], batch["attention_mask"], batch["labels"]        # [B,L] each
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

IGNORE_INDEX = -100


def encode_text(tokenizer: Any, text: str, bos: bool = False) -> list[int]:
    """Ids of `text` without special tokens; with bos=True the tokenizer's BOS first (if it has one)."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []
    first = [tokenizer.bos_token_id] if bos and tokenizer.bos_token_id is not None else []
    return first + ids


def with_answer(
    prompt: Sequence[int], answer: Sequence[int], eos: int | None = None
) -> tuple[list[int], list[int]]:
    """prompt + answer (+ EOS when `eos` is an id) and labels: IGNORE_INDEX on the prompt, the ids on the
    answer and EOS (new lists; the arguments are not changed)."""
    tail = [int(i) for i in answer] + ([int(eos)] if eos is not None else [])
    return [int(i) for i in prompt] + tail, [IGNORE_INDEX] * len(prompt) + tail


def encode_prompt_answer(
    tokenizer: Any, prompt: str, answer: str = "", add_eos: bool = True, add_bos: bool = True
) -> tuple[list[int], list[int]]:
    """Token ids of BOS + prompt + answer (+ EOS) and labels: -100 on BOS/prompt, the ids on answer/EOS."""
    eos = tokenizer.eos_token_id if add_eos and answer else None
    return with_answer(encode_text(tokenizer, prompt, bos=add_bos), encode_text(tokenizer, answer), eos)


def pad_batch(
    seqs: Sequence[tuple[Sequence[int], Sequence[int] | None]], pad_id: int, side: str = "right"
) -> dict[str, torch.Tensor]:
    """[(ids, labels or None)] -> input_ids, attention_mask, labels [B,L] (labels -100 on padding)."""
    if side not in ("left", "right"):
        raise ValueError(f"pad_batch: side must be 'left' or 'right', got {side!r}")
    if not seqs:
        raise ValueError("pad_batch: empty batch")
    length = max(len(ids) for ids, _ in seqs)
    ids_t = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    mask = torch.zeros(len(seqs), length, dtype=torch.long)
    labels = torch.full((len(seqs), length), IGNORE_INDEX, dtype=torch.long)
    for i, (ids, lab) in enumerate(seqs):
        n = len(ids)
        if lab is not None and len(lab) != n:
            raise ValueError(f"pad_batch: row {i} has {n} ids but {len(lab)} labels")
        sl = slice(0, n) if side == "right" else slice(length - n, length)
        ids_t[i, sl] = torch.as_tensor(list(ids), dtype=torch.long)
        mask[i, sl] = 1
        if lab is not None:
            labels[i, sl] = torch.as_tensor(list(lab), dtype=torch.long)
    return {"input_ids": ids_t, "attention_mask": mask, "labels": labels}

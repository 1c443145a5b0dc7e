"""Greedy generation with a KV cache, constrained to allowed token ids per step, in our own loop.

The prompt (multimodal prefix + left-padded text) is run once ("prefill") and its keys/values cached;
each new token then costs one single-position forward. `use_cache=False` recomputes the whole sequence
for every token instead; both paths give the same tokens and (to float tolerance) the same logits, the
nanoVLM invariant that tests/vla/models/test_generation.py checks.

Constraints (`allowed`) restrict the argmax at each step, e.g. to action-token ids:
    None                      any id
    LongTensor [K]            the same K ids at every step
    sequence of the above     step t uses allowed[t] (None = unconstrained); steps past the end: last one
    callable(step, tokens)    tokens [B,t] generated so far -> LongTensor [K] or None

    out = greedy_generate(lm, embeds, mask, max_new_tokens=7, allowed=action_ids, eos_token_id=None)
    out.tokens   # [B,T] long;  out.logits  # [B,T,V] scores at each step (before constraining)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from vla.models.masks import position_ids_from_mask, prefix_lm_mask

Allowed = torch.Tensor | Sequence[torch.Tensor | None] | Callable[[int, torch.Tensor], Any] | None


@dataclass
class GenerationResult:
    tokens: torch.Tensor  # [B,T] generated ids (pad after EOS)
    logits: torch.Tensor  # [B,T,V] raw next-token logits at each step
    finished: torch.Tensor  # [B] bool: EOS was generated


def _allowed_at(allowed: Allowed, step: int, tokens: torch.Tensor) -> torch.Tensor | None:
    if allowed is None:
        return None
    if isinstance(allowed, torch.Tensor):
        return allowed
    if callable(allowed):
        return allowed(step, tokens)
    seq = list(allowed)
    if not seq:
        return None
    return seq[min(step, len(seq) - 1)]


def constrain(logits: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
    """logits [B,V] with every id outside `ids` set to -inf (a new tensor)."""
    if ids is None:
        return logits
    ids = torch.as_tensor(ids, dtype=torch.long, device=logits.device).flatten()
    if ids.numel() == 0:
        raise ValueError("generation: the allowed id set is empty")
    if int(ids.min()) < 0 or int(ids.max()) >= logits.shape[-1]:
        raise ValueError(
            f"generation: allowed ids must lie in [0, {logits.shape[-1]}), got "
            f"[{int(ids.min())}, {int(ids.max())}]"
        )
    keep = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    keep[ids] = True
    return logits.masked_fill(~keep, float("-inf"))


@torch.no_grad()
def greedy_generate(
    lm: Any,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    *,
    eos_token_id: int | None = None,
    pad_token_id: int = 0,
    allowed: Allowed = None,
    use_cache: bool = True,
    prefix_lm: bool = False,
    hidden: torch.Tensor | None = None,
) -> GenerationResult:
    """Greedy decoding from a left-padded prompt.

    lm: a vla.backbones.language.LanguageModel (has `embed` and the HF forward).
    inputs_embeds [B,L,H]: the prompt embeddings; attention_mask [B,L]: 1 for tokens the LM attends to, the
    last column all ones (left padding) unless the last token is hidden. prefix_lm: the prompt attends
    bidirectionally (it is the prefix). hidden [B,L] bool: real tokens no query may attend to (the prompt
    words of an exclusive text encoder, `VLM.build_inputs`); their own queries still run, as in training,
    so the last prompt word, hidden, predicts the first new token.
    """
    b, l, _ = inputs_embeds.shape
    if attention_mask.shape != (b, l) or (hidden is not None and hidden.shape != (b, l)):
        raise ValueError(
            f"generation: attention_mask and hidden must be [B,L]={(b, l)}, got "
            f"{tuple(attention_mask.shape)} and {None if hidden is None else tuple(hidden.shape)}"
        )
    real = attention_mask.bool() if hidden is None else attention_mask.bool() | hidden.bool()
    if not bool(real[:, -1].all()):
        raise ValueError("generation: prompts must be left-padded (the last column all real tokens)")
    if max_new_tokens <= 0:
        raise ValueError(f"generation: max_new_tokens must be positive, got {max_new_tokens}")
    mask = attention_mask.to(torch.long)
    prompt_prefix = mask.bool() if prefix_lm else None
    tokens = torch.empty(b, 0, dtype=torch.long, device=inputs_embeds.device)
    finished = torch.zeros(b, dtype=torch.bool, device=inputs_embeds.device)
    step_logits: list[torch.Tensor] = []
    past = None
    for step in range(max_new_tokens):
        if use_cache and past is not None:
            new = lm.embed(tokens[:, -1:])  # [B,1,H]
            pos = position_ids_from_mask(mask)[:, -1:]  # [B,1]
            out = lm(
                inputs_embeds=new, attention_mask=mask, position_ids=pos, past_key_values=past, use_cache=True
            )
        else:
            embeds = torch.cat([inputs_embeds, lm.embed(tokens)], dim=1)  # [B,L+t,H]
            attn: torch.Tensor = mask
            if prompt_prefix is not None:
                gen = torch.zeros(b, tokens.shape[1], dtype=torch.bool, device=mask.device)
                attn = prefix_lm_mask(mask.bool(), torch.cat([prompt_prefix, gen], 1), embeds.dtype)
            out = lm(
                inputs_embeds=embeds,
                attention_mask=attn,
                position_ids=position_ids_from_mask(mask),
                use_cache=use_cache,
                logits_to_keep=1,
            )
        past = out.past_key_values if use_cache else None
        logits = out.logits[:, -1].float()  # [B,V]
        step_logits.append(logits)
        nxt = constrain(logits, _allowed_at(allowed, step, tokens)).argmax(dim=-1)  # [B]
        nxt = torch.where(finished, torch.full_like(nxt, pad_token_id), nxt)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)  # [B,t+1]
        mask = torch.cat([mask, torch.ones(b, 1, dtype=mask.dtype, device=mask.device)], dim=1)
        if eos_token_id is not None:
            finished = finished | (nxt == eos_token_id)
            if bool(finished.all()):
                break
    return GenerationResult(tokens=tokens, logits=torch.stack(step_logits, dim=1), finished=finished)

"""Attention masks and position ids for multimodal sequences with padding anywhere.

    position_ids_from_mask(mask)            [B,L] 0/1 -> [B,L] positions counting only real tokens
    prefix_lm_mask(valid, prefix, dtype)    [B,L] bool x2 -> [B,1,L,L] additive float mask: a query sees
                                            earlier valid keys (causal) and, if it is a prefix token, every
                                            valid prefix key (bidirectional prefix, PaliGemma/UniLM style)
    drop_masked(x, mask)                    [B,L,H] + [B,L] -> [B,K,H] + [B,K]: each row's real positions
                                            first, K = the longest row's count (a shorter LM sequence)

Hugging Face causal LMs accept a 4-D float mask as-is (0 = attend, dtype min = blocked), which is how the
prefix-LM option reaches Llama, Qwen2 and GPT-2 alike. Every query may attend to itself, so padded query
rows never become all-blocked (their outputs are ignored by the loss anyway).
"""

from __future__ import annotations

import torch


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """mask [B,L] (1 real, 0 pad) -> positions [B,L]: 0,1,2... over real tokens; pads get 0."""
    pos = mask.long().cumsum(dim=1) - 1
    return pos.clamp(min=0) * mask.long()


def prefix_lm_mask(valid: torch.Tensor, prefix: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """valid, prefix [B,L] bool -> additive mask [B,1,L,L] (0 attend, finfo(dtype).min blocked)."""
    if valid.shape != prefix.shape or valid.ndim != 2:
        raise ValueError(
            f"prefix_lm_mask: valid and prefix must both be [B,L], got {tuple(valid.shape)} "
            f"and {tuple(prefix.shape)}"
        )
    l = valid.shape[1]
    causal = torch.ones(l, l, dtype=torch.bool, device=valid.device).tril()  # [L,L] key j <= query i
    both_prefix = prefix[:, :, None] & prefix[:, None, :]  # [B,L,L]
    allowed = (causal[None] | both_prefix) & valid[:, None, :]  # [B,L(query),L(key)]
    allowed = allowed | torch.eye(l, dtype=torch.bool, device=valid.device)[None]
    out = torch.zeros(allowed.shape, dtype=dtype, device=valid.device)
    out = out.masked_fill(~allowed, torch.finfo(dtype).min)
    return out[:, None]  # [B,L,L] -> [B,1,L,L]


def drop_masked(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [B,L,H], mask [B,L] (1 real, 0 masked) -> (x [B,K,H], mask [B,K]): each row's real positions
    first, in their order, then its masked ones (still masked) up to K = the most real positions of any
    row. Nothing a causal or prefix LM computes at a real position changes (masked keys are never
    attended, and position_ids_from_mask counts real tokens only); the sequence just gets shorter, e.g.
    when `text_encoder.exclusive` masks the prompt's words or prompts of different lengths leave pads."""
    if x.ndim != 3 or mask.shape != x.shape[:2]:
        raise ValueError(
            f"drop_masked: expected x [B,L,H] and mask [B,L], got {tuple(x.shape)}, {tuple(mask.shape)}"
        )
    keep = mask.bool()  # [B,L]
    k = max(int(keep.sum(dim=1).max()), 1)
    order = torch.argsort((~keep).to(torch.uint8), dim=1, stable=True)[:, :k]  # [B,K] real ones first
    return x.gather(1, order[..., None].expand(-1, -1, x.shape[-1])), mask.gather(1, order)

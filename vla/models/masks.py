"""Attention masks and position ids for multimodal sequences with padding anywhere.

    position_ids_from_mask(mask)            [B,L] 0/1 -> [B,L] positions counting only real tokens
    prefix_lm_mask(valid, prefix, dtype)    [B,L] bool x2 -> [B,1,L,L] additive float mask: a query sees
                                            earlier valid keys (causal) and, if it is a prefix token, every
                                            valid prefix key (bidirectional prefix, PaliGemma/UniLM style)

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

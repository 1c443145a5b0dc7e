"""Ordinal soft labels for binned action tokens (HL-Gauss: Imani & White 2018, Farebrother et al. 2024).

RT-2/OpenVLA train action tokens with plain cross-entropy: predicting bin 101 when the label is bin 100
costs as much as predicting bin 255. With web-scale data that is fine; with a few hundred demonstrations
and a from-scratch encoder the model learns the bins' order slowly and falls back to the most frequent
bins. Spreading each label over its neighbouring bins with a Gaussian of width `sigma` bins makes the
classification behave like regression (near misses cost little, far ones much) while decoding stays the
same argmax over tokens. Only bin tokenizers have an order (uniform, quantile, openvla); FAST ids don't.

    loss = ordinal_action_loss(logits, target, lm_ids, sigma=2.0)   # logits [B,L,V], target [B,L]

Every labelled position counts once, as in the LM's own mean cross-entropy: action positions against
their soft label over the bins' LM ids, other labelled positions (EOS, VQA answers) against their id.
"""

from __future__ import annotations

import torch

from vla.backbones.text import IGNORE_INDEX


def gaussian_bin_targets(bins: torch.Tensor, n_bins: int, sigma: float) -> torch.Tensor:
    """bins [N] long in [0, n_bins) -> soft labels [N, n_bins] (rows sum to 1, peak at the bin)."""
    grid = torch.arange(n_bins, dtype=torch.float32, device=bins.device)  # [n_bins]
    d = grid[None, :] - bins[:, None].float()  # [N, n_bins]
    w = torch.exp(-0.5 * (d / sigma) ** 2)
    return w / w.sum(dim=1, keepdim=True)


def ordinal_action_loss(
    logits: torch.Tensor, target: torch.Tensor, lm_ids: torch.Tensor, sigma: float
) -> torch.Tensor:
    """Mean loss over labelled positions; action positions get Gaussian soft labels over their bins.

    logits [B,L,V] (position t scores target t), target [B,L] LM ids or IGNORE_INDEX, lm_ids [n_bins] the LM
    id of each bin in bin order (ActionVocab.lm_ids), sigma the label width in bins (> 0).
    """
    if sigma <= 0:
        raise ValueError(f"ordinal_action_loss: sigma must be > 0 bins, got {sigma}")
    labelled = target != IGNORE_INDEX  # [B,L]
    if not bool(labelled.any()):
        return logits.sum() * 0.0
    logp = torch.log_softmax(logits[labelled].float(), dim=-1)  # [N,V]
    tgt = target[labelled]  # [N]
    lm_ids = lm_ids.to(tgt.device)
    lookup = torch.full((logits.shape[-1],), -1, dtype=torch.long, device=tgt.device)  # LM id -> bin
    lookup[lm_ids] = torch.arange(len(lm_ids), device=tgt.device)
    bins = lookup[tgt]  # [N]; -1 for non-action ids
    is_bin = bins >= 0
    nll = -logp.gather(1, tgt[:, None]).squeeze(1)  # [N] plain cross-entropy
    if bool(is_bin.any()):
        soft = gaussian_bin_targets(bins[is_bin], len(lm_ids), sigma)  # [n, n_bins]
        nll = nll.clone()
        nll[is_bin] = -(soft * logp[is_bin][:, lm_ids]).sum(dim=1)  # [n]
    return nll.mean()

"""Continuous action head: L1 regression of a whole action chunk from the LM (OpenVLA-OFT style).

RT-2 / OpenVLA decode actions as tokens: D (x T) greedy steps, each a 256-way classification trained with
cross-entropy. OpenVLA-OFT (Kim et al. 2025) showed that the same VLM fine-tunes faster and acts better when
the action positions are instead T learned query embeddings appended after the prompt, decoded in one
forward pass ("parallel decoding"), and their final hidden states are mapped by a small MLP to continuous
actions trained with an L1 loss. On this project's tiny from-scratch default this is the difference between
a policy that reads the scene and one that does not: on held-out `pick_colour` layouts, the same FiLM-conv
features regressed the approach action to 4.6 / 6.2 mm (x / y) after 2,000 steps, while classification
heads were at 12.8 / 18.3 mm (32 bins) and 8.5 / 15.2 mm (256 bins, Gaussian soft labels), against labels
of 18 / 28 mm (benchmarks/head_probe.py, docs/training.md).

Shapes (legend: B batch, T chunk steps, D action dim, H LM hidden):

    head = L1ActionHead(hidden=64, chunk_len=1, action_dim=7)
    q = head.queries                          # [T,H] appended after the prompt (VLM.query_hidden_states)
    y = head(hidden_states)                   # [B,T,H] -> [B,T,D] normalised actions (q99 -> [-1, 1])
    loss = head.loss(y, target)               # mean |y - target| over B, T, D

The head predicts *normalised* actions (the dataset Normalizer's space, so every dimension weighs the same
in the loss): the processor hands it normalised targets (`VLAProcessor.collate`, batch["actions"]) and
unnormalises its outputs (`VLAProcessor.postprocess`) with the checkpoint's one normaliser; the head itself
sees tensors only. Its weights live in model.safetensors under `action_head.*`; config.json's "vla"
section says `action_head: "l1"`.

`AuxHead` is a training aid beside it: from the first query's final hidden state [B,H] it regresses where
the instruction's object and goal are (aux/scene, normalised [B,6]; privileged simulator state recorded by
`vla collect aux=true`), so the features the action is read from must say which object and which goal the
words name. `vla train aux_weight=W` adds W x its L1 loss; acting never runs it.
"""

from __future__ import annotations

import torch
from torch import nn

ACTION_HEADS = ("tokens", "l1")


class L1ActionHead(nn.Module):
    """T learned query embeddings [T,H] and an MLP H -> 4H -> D applied to each query's final hidden state."""

    def __init__(self, hidden: int, chunk_len: int, action_dim: int):
        super().__init__()
        if hidden < 1 or chunk_len < 1 or action_dim < 1:
            raise ValueError(
                f"L1ActionHead: hidden, chunk_len and action_dim must be >= 1, got {hidden}, {chunk_len}, "
                f"{action_dim}"
            )
        self.chunk_len, self.action_dim = int(chunk_len), int(action_dim)
        self.queries = nn.Parameter(torch.randn(chunk_len, hidden) * 0.02)  # [T,H]
        self.mlp = nn.Sequential(
            nn.LayerNorm(hidden), nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, action_dim)
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Final hidden states of the query positions [B,T,H] -> normalised actions [B,T,D]."""
        if hidden_states.ndim != 3 or hidden_states.shape[1] != self.chunk_len:
            raise ValueError(
                f"L1ActionHead: expected hidden states [B, T={self.chunk_len}, H], got "
                f"{tuple(hidden_states.shape)}"
            )
        return self.mlp(hidden_states)  # [B,T,H] -> [B,T,D]

    @staticmethod
    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean absolute error between predicted and target normalised values of one shape: actions
        [B,T,D] (and the auxiliary head's [B,A])."""
        if pred.shape != target.shape:
            raise ValueError(f"L1ActionHead.loss: pred {tuple(pred.shape)} != target {tuple(target.shape)}")
        return (pred.float() - target.float()).abs().mean()


class AuxHead(nn.Module):
    """An MLP H -> 2H -> A from the first action query's final hidden state: the auxiliary scene target."""

    def __init__(self, hidden: int, aux_dim: int):
        super().__init__()
        if hidden < 1 or aux_dim < 1:
            raise ValueError(f"AuxHead: hidden and aux_dim must be >= 1, got {hidden} and {aux_dim}")
        self.aux_dim = int(aux_dim)
        self.mlp = nn.Sequential(
            nn.LayerNorm(hidden), nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, aux_dim)
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Final hidden states of the query positions [B,T,H] -> the auxiliary target [B,A] (query 0's)."""
        return self.mlp(hidden_states[:, 0])  # [B,H] -> [B,A]


def check_action_head(name: str) -> str:
    """The action head's name, or a clear error listing the choices."""
    if name not in ACTION_HEADS:
        raise ValueError(f"action_head must be one of {list(ACTION_HEADS)}, got {name!r}")
    return name

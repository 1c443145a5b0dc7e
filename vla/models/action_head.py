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

With `modes` K > 1 the head keeps K hypotheses of the chunk apart instead of averaging them (multiple-choice
learning, Guzman-Rivera et al. 2012; the multi-hypothesis heads of trajectory forecasting): the MLP emits K
chunks and a score per chunk (from the queries' mean state), the loss is the L1 of the best chunk only
(plus `spread` x the mean of all K, so no hypothesis starves) and a cross-entropy that teaches the scores
which chunk won; acting returns the best-scored chunk. An L1 head trained on a choice between two plans
(push towards one marker or the other) regresses each coordinate to its median, which may lie between
them; a K-hypothesis head can keep both and commit to one:

    head = L1ActionHead(hidden=64, chunk_len=1, action_dim=7, modes=4)
    chunks, scores = head.hypotheses(hidden_states)   # [B,K,T,D], [B,K]
    loss, parts = head.modes_loss(chunks, scores, target)   # best chunk's L1 + spread + choice CE
    y = head(hidden_states)                           # [B,T,D] the best-scored chunk

`AuxHead` is a training aid beside it: from the first query's final hidden state [B,H] it regresses where
the instruction's object and goal are (aux/scene, normalised [B,6]; privileged simulator state recorded by
`vla collect aux=true`), so the features the action is read from must say which object and which goal the
words name. `vla train aux_weight=W` adds W x its L1 loss; acting never runs it.

`vla train action_loss=mse` trains the head (K = 1) with the squared error instead of L1 (`regression_loss`):
the gradient of one element is 2(y - target) rather than sign(y - target), so a few large errors (the first
steps of an approach, a 0.25-rad turn among frames that keep the yaw) outweigh many small ones. Acting and
the checkpoint are the same either way.
"""

from __future__ import annotations

import torch
from torch import nn

ACTION_HEADS = ("tokens", "l1")
# the continuous head's training loss on normalised actions: "l1" (OpenVLA-OFT, ACT: a per-coordinate median,
# every error pulls alike) or "mse" (diffusion policy's, robomimic's BC: the pull grows with the error, so
# rare large labels, an approach's first steps, weigh more than the many near-zero ones)
ACTION_LOSSES = ("l1", "mse")
# the weight of the scores' cross-entropy beside the L1 of normalised actions (~0.01-0.1 once fitted): its
# gradient reaches the shared LM too, and at 1 it would outweigh the action error that it ranks
CHOICE_WEIGHT = 0.1


class L1ActionHead(nn.Module):
    """T learned query embeddings [T,H] and an MLP H -> 4H -> K*D applied to each query's final hidden
    state; with K = `modes` > 1 also a score per hypothesis (a layer norm and a linear map of the queries'
    mean state)."""

    def __init__(self, hidden: int, chunk_len: int, action_dim: int, modes: int = 1, spread: float = 0.05):
        super().__init__()
        if hidden < 1 or chunk_len < 1 or action_dim < 1 or modes < 1:
            raise ValueError(
                f"L1ActionHead: hidden, chunk_len, action_dim and modes must be >= 1, got {hidden}, "
                f"{chunk_len}, {action_dim}, {modes}"
            )
        if not 0.0 <= spread <= 1.0:
            raise ValueError(f"L1ActionHead: spread must be in [0, 1], got {spread}")
        self.chunk_len, self.action_dim, self.modes = int(chunk_len), int(action_dim), int(modes)
        self.spread = float(spread)
        self.queries = nn.Parameter(torch.randn(chunk_len, hidden) * 0.02)  # [T,H]
        self.mlp = nn.Sequential(
            nn.LayerNorm(hidden),
            nn.Linear(hidden, 4 * hidden),
            nn.GELU(),
            nn.Linear(4 * hidden, self.modes * action_dim),
        )
        self.score = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, self.modes)) if modes > 1 else None

    def _check(self, hidden_states: torch.Tensor) -> None:
        if hidden_states.ndim != 3 or hidden_states.shape[1] != self.chunk_len:
            raise ValueError(
                f"L1ActionHead: expected hidden states [B, T={self.chunk_len}, H], got "
                f"{tuple(hidden_states.shape)}"
            )

    def hypotheses(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B,T,H] -> the K chunks [B,K,T,D] (normalised) and their scores [B,K] (zeros when K = 1)."""
        self._check(hidden_states)
        b, t, _ = hidden_states.shape
        out = self.mlp(hidden_states).view(b, t, self.modes, self.action_dim)  # [B,T,K*D] -> [B,T,K,D]
        chunks = out.transpose(1, 2)  # [B,K,T,D]
        if self.score is None:
            return chunks, hidden_states.new_zeros(b, 1)
        return chunks, self.score(hidden_states.mean(dim=1))  # [B,H] -> [B,K]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Final hidden states of the query positions [B,T,H] -> normalised actions [B,T,D] (with K > 1
        hypotheses, the best-scored one)."""
        return self.best(*self.hypotheses(hidden_states))

    @staticmethod
    def best(chunks: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """chunks [B,K,T,D], scores [B,K] -> the best-scored chunk of each row [B,T,D]."""
        if chunks.shape[1] == 1:
            return chunks[:, 0]
        top = scores.argmax(dim=1)  # [B]
        return chunks[torch.arange(len(top), device=top.device), top]  # [B,T,D]

    def modes_loss(
        self, chunks: torch.Tensor, scores: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """chunks [B,K,T,D], scores [B,K], target [B,T,D] -> the loss: the best chunk's L1 (mean over
        B,T,D) + spread x every chunk's + the scores' cross-entropy towards the best chunk; and its parts
        (detached): best_l1, choice_ce, choice_acc (how often the top score is the best chunk)."""
        if chunks.shape[0] != target.shape[0] or chunks.shape[2:] != target.shape[1:]:
            raise ValueError(
                f"L1ActionHead.modes_loss: chunks {tuple(chunks.shape)} [B,K,T,D] do not fit target "
                f"{tuple(target.shape)} [B,T,D]"
            )
        err = (chunks.float() - target.float()[:, None]).abs().mean(dim=(2, 3))  # [B,K]
        best = err.detach().argmin(dim=1)  # [B] the winning hypothesis
        best_l1 = err.gather(1, best[:, None]).mean()
        ce = nn.functional.cross_entropy(scores.float(), best)
        loss = best_l1 + self.spread * err.mean() + CHOICE_WEIGHT * ce
        parts = {
            "best_l1": best_l1.detach(),
            "choice_ce": ce.detach(),
            "choice_acc": (scores.argmax(dim=1) == best).float().mean().detach(),
        }
        return loss, parts

    @staticmethod
    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean absolute error between predicted and target normalised values of one shape: actions
        [B,T,D] (and the auxiliary head's [B,A])."""
        return regression_loss(pred, target, "l1")


def check_action_loss(name: str) -> str:
    """`name` if it is one of ACTION_LOSSES, else a ValueError listing them."""
    if name not in ACTION_LOSSES:
        raise ValueError(f"action_loss must be one of {list(ACTION_LOSSES)}, got {name!r}")
    return name


def regression_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean over every element of |pred - target| ("l1") or (pred - target)^2 ("mse"); one shape."""
    if pred.shape != target.shape:
        raise ValueError(f"regression_loss: pred {tuple(pred.shape)} != target {tuple(target.shape)}")
    err = pred.float() - target.float()
    return err.square().mean() if check_action_loss(kind) == "mse" else err.abs().mean()


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

"""Placing action-tokenizer ids in a language model's vocabulary, and constrained decoding over them.

An `ActionVocab` is a fixed map from tokenizer ids k in [0, n) to LM ids, built one of two ways:

* **append** (default, `append_action_tokens`): n new special tokens `<act_0>` ... `<act_{n-1}>` are added
  to a copy of a Hugging Face text tokenizer (the argument is never mutated). They take the ids
  `len(tokenizer) + k`; `ActionVocab.lm_vocab_size` is the new `len(tokenizer)`, the size to pass to
  `model.resize_token_embeddings(...)`. Tokens already present (a reloaded checkpoint) are reused.
* **overwrite** (`ActionVocab.openvla`): OpenVLA's mapping onto the last n ids of the base vocabulary,
  `lm_id = base_vocab_size - (k + 1)` = `vocab_size - b` with OpenVLA's digitize bin b = k + 1. For Llama 2
  (32000 base ids, 256 bins): k = 0 -> 31999, k = 127 (a_n = 0.0) -> 31872, k = 255 -> 31744. No resize;
  those text tokens (rarely used ones in Llama's vocabulary) lose their text meaning.

Constrained decoding: `allowed_ids()` lists the LM ids of action tokens, `logits_mask(V)` is a bool [V]
mask (True = may be generated; extra ids such as EOS can be allowed), `mask_logits(logits)` sets the rest
to -inf (numpy or torch, [..., V]). `from_lm(lm_ids)` maps generated ids back to tokenizer ids, giving -1
and `is_action=False` for any non-action id, so the tokenizer's decode flags the chunk invalid.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MODES = ("append", "overwrite")
DEFAULT_PREFIX = "<act_"


@dataclass(frozen=True)
class ActionVocab:
    """Tokenizer id k -> LM id `lm_ids[k]`; the LM's vocabulary then has `lm_vocab_size` entries."""

    mode: str
    lm_ids: tuple[int, ...]  # [n] LM id of each tokenizer id
    lm_vocab_size: int

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"ActionVocab: mode must be one of {MODES}, got {self.mode!r}")
        ids = np.asarray(self.lm_ids, dtype=np.int64)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError("ActionVocab: lm_ids must be a non-empty 1-D list")
        if ids.min() < 0 or ids.max() >= self.lm_vocab_size:
            raise ValueError(f"ActionVocab: lm_ids must lie in [0, {self.lm_vocab_size}), got {ids.min()}..")
        if np.unique(ids).size != ids.size:
            raise ValueError("ActionVocab: lm_ids must be distinct")

    # --- constructors --------------------------------------------------------------------------------
    @classmethod
    def openvla(
        cls, base_vocab_size: int = 32000, n_bins: int = 256, lm_vocab_size: int | None = None
    ) -> ActionVocab:
        """OpenVLA's overwrite mapping: lm_id = base_vocab_size - (k + 1) for k in [0, n_bins)."""
        if n_bins < 1 or n_bins > base_vocab_size:
            raise ValueError(f"ActionVocab.openvla: need 1 <= n_bins <= {base_vocab_size}, got {n_bins}")
        lm_ids = tuple(int(base_vocab_size - (k + 1)) for k in range(n_bins))
        return cls("overwrite", lm_ids, int(lm_vocab_size or base_vocab_size))

    # --- id maps -------------------------------------------------------------------------------------
    @property
    def n_tokens(self) -> int:
        return len(self.lm_ids)

    def to_lm(self, ids: Any) -> np.ndarray:
        """Tokenizer ids [...] -> LM ids [...] (strict: ids outside [0, n) raise ValueError)."""
        arr = np.asarray(ids)
        if arr.size and (arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() >= self.n_tokens):
            raise ValueError(f"ActionVocab.to_lm: expected integer ids in [0, {self.n_tokens}), got {arr}")
        return np.asarray(self.lm_ids, dtype=np.int64)[arr.astype(np.int64)]

    def from_lm(self, lm_ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """LM ids [...] -> (tokenizer ids [...] with -1 for non-action ids, is_action bool [...])."""
        arr = np.asarray(lm_ids, dtype=np.int64)
        inverse = np.full(self.lm_vocab_size, -1, dtype=np.int64)
        inverse[np.asarray(self.lm_ids)] = np.arange(self.n_tokens)
        inside = (arr >= 0) & (arr < self.lm_vocab_size)
        out = np.where(inside, inverse[np.clip(arr, 0, self.lm_vocab_size - 1)], -1)
        return out, out >= 0

    # --- constrained decoding ------------------------------------------------------------------------
    def allowed_ids(self, extra_ids: Iterable[int] = ()) -> np.ndarray:
        """Sorted LM ids that constrained decoding may emit: the action tokens plus `extra_ids`."""
        return np.unique(
            np.concatenate([np.asarray(self.lm_ids), np.asarray(list(extra_ids), dtype=np.int64)])
        )

    def logits_mask(self, vocab_size: int | None = None, extra_ids: Iterable[int] = ()) -> np.ndarray:
        """Bool mask [V] (V defaults to lm_vocab_size): True where a token may be generated."""
        V = int(vocab_size if vocab_size is not None else self.lm_vocab_size)
        allowed = self.allowed_ids(extra_ids)
        if allowed.max() >= V or allowed.min() < 0:
            raise ValueError(f"ActionVocab.logits_mask: vocab_size {V} is too small for id {allowed.max()}")
        mask = np.zeros(V, dtype=bool)
        mask[allowed] = True
        return mask

    def mask_logits(self, logits: Any, extra_ids: Iterable[int] = ()) -> Any:
        """Logits [..., V] (numpy or torch) -> a new array with non-allowed entries at -inf."""
        V = int(logits.shape[-1])
        mask = self.logits_mask(V, extra_ids)  # [V]
        if type(logits).__module__.startswith("torch"):
            import torch

            m = torch.as_tensor(mask, device=logits.device)
            return logits.masked_fill(~m, float("-inf"))
        return np.where(mask, np.asarray(logits), -np.inf)

    # --- persistence ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "lm_ids": list(self.lm_ids), "lm_vocab_size": self.lm_vocab_size}

    @classmethod
    def from_dict(cls, d: Any) -> ActionVocab:
        if not isinstance(d, dict) or not {"mode", "lm_ids", "lm_vocab_size"} <= set(d):
            raise ValueError("ActionVocab.from_dict: expected an object with mode, lm_ids, lm_vocab_size")
        return cls(str(d["mode"]), tuple(int(i) for i in d["lm_ids"]), int(d["lm_vocab_size"]))


def action_token_strings(n: int, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """The special-token strings of append mode: ['<act_0>', ..., '<act_{n-1}>']."""
    return [f"{prefix}{k}>" for k in range(n)]


def append_action_tokens(
    text_tokenizer: Any, n: int, prefix: str = DEFAULT_PREFIX
) -> tuple[Any, ActionVocab]:
    """Copy `text_tokenizer` (a Hugging Face tokenizer), add n action special tokens, map them.

    Returns (new tokenizer, ActionVocab); resize the model's embeddings to `vocab.lm_vocab_size`.
    """
    if int(n) < 1:
        raise ValueError(f"append_action_tokens: n must be >= 1, got {n}")
    tok = copy.deepcopy(text_tokenizer)
    strings = action_token_strings(int(n), prefix)
    tok.add_tokens(strings, special_tokens=True)
    lm_ids = tuple(int(i) for i in tok.convert_tokens_to_ids(strings))
    return tok, ActionVocab("append", lm_ids, len(tok))


def openvla_vocab_for(text_tokenizer: Any, n_bins: int = 256) -> ActionVocab:
    """OpenVLA overwrite mapping for a Hugging Face tokenizer: uses its base `vocab_size` (no added ids)."""
    return ActionVocab.openvla(int(text_tokenizer.vocab_size), n_bins, lm_vocab_size=len(text_tokenizer))


def make_action_vocab(
    mode: str, text_tokenizer: Any, n_tokens: int, prefix: str = DEFAULT_PREFIX
) -> tuple[Any, ActionVocab]:
    """One entry point for config: mode 'append' or 'overwrite' -> (tokenizer to use, ActionVocab)."""
    if mode == "append":
        return append_action_tokens(text_tokenizer, n_tokens, prefix)
    if mode == "overwrite":
        return copy.deepcopy(text_tokenizer), openvla_vocab_for(text_tokenizer, n_tokens)
    raise ValueError(f"action vocab mode must be one of {MODES}, got {mode!r}")


def lm_sequence(vocab: ActionVocab, ids: Sequence[int] | np.ndarray) -> list[int]:
    """Tokenizer ids of one chunk [L] -> LM ids as a plain list (to append to a prompt)."""
    return vocab.to_lm(np.asarray(ids, dtype=np.int64).reshape(-1)).tolist()

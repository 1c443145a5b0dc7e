"""Shared data for the action-tokenizer tests: smooth synthetic action chunks and fitted tokenizers."""

import numpy as np
import pytest

from action_tokenizers import list_tokenizers, make_tokenizer

T, D = 10, 7


def smooth_chunks(n: int, seed: int = 0, amp: float = 0.8) -> np.ndarray:
    """Chunks [n, T, D] of low-frequency sinusoids in [-amp, amp] (like normalised expert motion)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, T)[None, :, None]  # [1, T, 1]
    freq = rng.uniform(0.1, 1.0, (n, 1, D))
    phase = rng.uniform(0.0, 2 * np.pi, (n, 1, D))
    return amp * np.sin(2 * np.pi * freq * t + phase)  # [n, T, D]


def fitted(name: str, chunk_len: int = T):
    return make_tokenizer(name, action_dim=D, chunk_len=chunk_len).fit(smooth_chunks(400))


@pytest.fixture(scope="session")
def smooth():
    """The smooth-chunk generator: smooth(n, seed=0, amp=0.8) -> [n, T=10, D=7]."""
    return smooth_chunks


@pytest.fixture(scope="session")
def fitted_tokenizers():
    """One fitted instance per registry entry, each on 10-step chunks of 7-D smooth actions."""
    return {name: fitted(name) for name in list_tokenizers()}

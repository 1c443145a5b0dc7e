"""Chunk wrappers: the queue executes k actions per inference and keeps the history complete; temporal
ensembling averages every chunk's prediction for the current step with ACT's exp(-m i) weights."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla.core.policy import Policy
from policies.wrappers import ActionChunkQueue, ChunkPolicy, TemporalEnsemble


class RampChunks:
    """A chunk policy whose chunk predicted at call c (0-based) is [[100 c + j] * D for j in range(T)]."""

    def __init__(self, chunk_len=4, dim=2):
        self.chunk_len, self.dim = chunk_len, dim
        self.calls, self.seen = 0, []

    def reset(self, seed=None):
        self.calls, self.seen = 0, []

    def observe(self, obs):
        self.seen.append(obs["t"])

    def predict_chunk(self, obs):
        self.observe(obs)
        c = self.calls
        self.calls += 1
        return np.array([[100.0 * c + j] * self.dim for j in range(self.chunk_len)], dtype=np.float32)


def test_wrappers_are_policies():
    assert isinstance(RampChunks(), ChunkPolicy)
    assert isinstance(ActionChunkQueue(RampChunks(), 2), Policy)
    assert isinstance(TemporalEnsemble(RampChunks()), Policy)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_queue_executes_k_steps_per_inference(k):
    inner = RampChunks(chunk_len=4)
    q = ActionChunkQueue(inner, execute_steps=k)
    q.reset()
    out = [q.select_action({"t": t})[0] for t in range(8)]
    expected = [100.0 * (t // k) + t % k for t in range(8)]
    assert out == expected
    assert q.inferences == inner.calls == -(-8 // k)
    assert inner.seen == list(range(8))  # every observation reached the history, inference or not
    q.reset()
    assert q.inferences == 0 and q.select_action({"t": 0})[0] == 0.0


def test_queue_returns_copies_and_rejects_bad_k():
    q = ActionChunkQueue(RampChunks(), 2)
    a = q.select_action({"t": 0})
    a[:] = -1
    assert q.select_action({"t": 1})[0] == 1.0
    with pytest.raises(ValueError, match="execute_steps"):
        ActionChunkQueue(RampChunks(chunk_len=4), 5)
    with pytest.raises(ValueError, match="execute_steps"):
        ActionChunkQueue(RampChunks(), 0)


def test_temporal_ensemble_by_hand():
    # chunks: call c gives value 100 c + j at offset j. Step t sees chunks c = t-3..t (T = 4), each
    # predicting 100 c + (t - c) for step t.
    m = 0.5
    ens = TemporalEnsemble(RampChunks(chunk_len=4, dim=1), coeff=m)
    ens.reset()
    for t in range(7):
        got = float(ens.select_action({"t": t})[0])
        cs = list(range(max(0, t - 3), t + 1))  # oldest first
        preds = np.array([100.0 * c + (t - c) for c in cs])
        w = np.exp(-m * np.arange(len(cs)))
        assert got == pytest.approx(float((w * preds).sum() / w.sum()), rel=1e-6)


@settings(max_examples=20, deadline=None)
@given(chunk_len=st.integers(1, 6), steps=st.integers(1, 12))
def test_temporal_ensemble_of_constant_chunks_is_that_constant(chunk_len, steps):
    class Const(RampChunks):
        def predict_chunk(self, obs):
            self.observe(obs)
            return np.full((self.chunk_len, 3), 0.25, dtype=np.float32)

    ens = TemporalEnsemble(Const(chunk_len=chunk_len, dim=3), coeff=0.1)
    for t in range(steps):
        np.testing.assert_allclose(ens.select_action({"t": t}), 0.25, rtol=1e-6)
    assert len(ens._chunks) == min(steps, chunk_len)


def test_temporal_ensemble_reset_and_bad_coeff():
    ens = TemporalEnsemble(RampChunks(chunk_len=3, dim=1), coeff=0.0)
    for t in range(4):
        ens.select_action({"t": t})
    ens.reset()
    assert float(ens.select_action({"t": 0})[0]) == 0.0  # a fresh episode: only the new chunk
    with pytest.raises(ValueError, match="coeff"):
        TemporalEnsemble(RampChunks(), coeff=-1.0)

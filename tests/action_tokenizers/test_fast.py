"""FAST (DCT + BPE): round trip within the quantisation bound, compression, malformed sequences."""

import math

import numpy as np
import pytest
import scipy.fft
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from action_tokenizers import FASTTokenizer

T, D = 10, 7


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    freq=arrays(np.float64, (D,), elements=st.floats(0.0, 1.5)),
    phase=arrays(np.float64, (D,), elements=st.floats(0.0, 2 * math.pi)),
    amp=arrays(np.float64, (D,), elements=st.floats(0.0, 1.0)),
)
def test_roundtrip_on_smooth_trajectories_within_quantisation_error(fitted_tokenizers, freq, phase, amp):
    tok = fitted_tokenizers["fast"]
    t = np.linspace(0, 1, T)[:, None]
    x = amp * np.sin(2 * np.pi * freq * t + phase)  # [T, D] in [-1, 1]
    out = tok.decode(tok.encode(x))
    assert bool(out.valid)
    err = np.abs(out.actions.astype(np.float64) - x)
    # per dimension: max_t |err| <= ||rounding error||_2 <= sqrt(T) * 0.5 / scale
    assert err.max() <= tok.max_error_bound + 1e-6
    # the L2 error per dimension equals the coefficient rounding error exactly (orthonormal DCT)
    c = scipy.fft.dct(x, axis=0, norm="ortho") * tok.scale
    np.testing.assert_allclose(
        np.linalg.norm(out.actions - x, axis=0), np.linalg.norm(c - np.rint(c), axis=0) / tok.scale, atol=1e-5
    )


def test_compresses_smooth_chunks(fitted_tokenizers, smooth):
    tok = fitted_tokenizers["fast"]
    ids = tok.encode(smooth(200, seed=9))
    mean_len = np.mean([len(r) for r in ids])
    assert mean_len < 0.5 * T * D  # BPE merges the many near-zero high-frequency coefficients
    assert tok.vocab_size <= 1024


def test_coefficients_are_frequency_major(fitted_tokenizers):
    tok = fitted_tokenizers["fast"]
    x = np.zeros((T, D))
    x[:, 3] = 0.5  # constant: only the DC term of dim 3 is non-zero
    coefs = tok.coefficients(x)
    expected = np.zeros(T * D, dtype=np.int64)
    expected[3] = round(0.5 * math.sqrt(T) * tok.scale)  # position f * D + d with f = 0
    np.testing.assert_array_equal(coefs, expected)


def test_malformed_sequences_give_best_valid_chunk(fitted_tokenizers, smooth):
    tok = fitted_tokenizers["fast"]
    x = smooth(1, seed=4)[0]
    ids = tok.encode(x)
    ref = tok.decode(ids).actions
    # unknown ids are dropped: the rest still decodes to the same chunk
    noisy = np.concatenate([[tok.vocab_size + 3], ids, [-7]])
    out = tok.decode(noisy)
    assert not out.valid
    np.testing.assert_array_equal(out.actions, ref)
    # truncated: the missing (high-frequency) coefficients are zero, low frequencies survive
    short = tok.decode(ids[: max(1, len(ids) // 2)])
    assert not short.valid and np.all(np.isfinite(short.actions))
    assert np.abs(short.actions.mean(axis=0) - x.mean(axis=0)).max() < 0.5
    # too long: extra coefficients are ignored
    long_ = tok.decode(np.concatenate([ids, ids]))
    assert not long_.valid
    np.testing.assert_array_equal(long_.actions, ref)


def test_out_of_range_input_saturates_the_alphabet(fitted_tokenizers):
    tok = fitted_tokenizers["fast"]
    big = np.full((T, D), 50.0)
    coefs = tok.coefficients(big)
    assert coefs.max() == tok.coef_max
    out = tok.decode(tok.encode(big))
    assert bool(out.valid) and np.all(np.isfinite(out.actions))


def test_fit_rejects_an_alphabet_larger_than_the_vocabulary(smooth):
    with pytest.raises(ValueError, match="alphabet has .* symbols .* more than vocab_size 64"):
        FASTTokenizer(action_dim=D, chunk_len=T, scale=100.0, vocab_size=64).fit(smooth(10))
    with pytest.raises(ValueError, match="scale must be a positive number"):
        FASTTokenizer(scale=0.0)


def test_fit_on_one_trajectory_cuts_chunks(smooth):
    traj = smooth(30, seed=2).reshape(-1, D)  # [300, D]
    tok = FASTTokenizer(action_dim=D, chunk_len=T, vocab_size=256).fit(traj)
    assert tok.is_fitted and tok.vocab_size <= 256
    with pytest.raises(ValueError, match="fewer than one chunk"):
        FASTTokenizer(action_dim=D, chunk_len=T).fit(traj[:5])

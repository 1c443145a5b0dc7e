"""FAST (DCT + BPE): round trip within the quantisation bound, compression, malformed sequences."""

import math

import numpy as np
import pytest
import scipy.fft
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from action_tokenizers.fast import FASTTokenizer

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


@pytest.mark.parametrize(("order", "position"), [("dimension", 3 * T), ("frequency", 3)])
def test_coefficient_positions_follow_the_order(smooth, order, position):
    tok = FASTTokenizer(action_dim=D, chunk_len=T, vocab_size=256, order=order).fit(smooth(50))
    x = np.zeros((T, D))
    x[:, 3] = 0.5  # constant: only the DC term of dim 3 is non-zero
    coefs = tok.coefficients(x)
    expected = np.zeros(T * D, dtype=np.int64)
    expected[position] = round(0.5 * math.sqrt(T) * tok.scale)  # d * T + f (dimension), f * D + d (frequency)
    np.testing.assert_array_equal(coefs, expected)
    np.testing.assert_allclose(tok.reconstruct(coefs), x, atol=0.5 / tok.scale)


def test_orders_give_identical_reconstructions(smooth):
    x = smooth(60, seed=5)
    toks = [
        FASTTokenizer(action_dim=D, chunk_len=T, order=o).fit(smooth(300)) for o in ("dimension", "frequency")
    ]
    outs = [t.decode(t.encode(x)) for t in toks]
    assert all(bool(o.valid.all()) for o in outs)
    np.testing.assert_allclose(outs[0].actions, outs[1].actions, atol=1e-6)  # same coefficients, reordered
    with pytest.raises(ValueError, match="order must be one of"):
        FASTTokenizer(order="time")


def test_file_without_order_loads_as_frequency_major(tmp_path, smooth):
    tok = FASTTokenizer(action_dim=D, chunk_len=T, vocab_size=256, order="frequency").fit(smooth(100))
    d = tok.to_dict()
    assert d.pop("order") == "frequency"
    old = FASTTokenizer.from_dict(d)  # a file written before the option existed
    assert old.order == "frequency"
    x = smooth(5, seed=3)
    assert [r.tolist() for r in old.encode(x)] == [r.tolist() for r in tok.encode(x)]
    new = FASTTokenizer.load(
        FASTTokenizer(action_dim=D, chunk_len=T, vocab_size=256).fit(smooth(100)).save(tmp_path / "t.json")
    )
    assert new.order == "dimension"


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
    # truncated: the missing trailing coefficients are zero; in dimension order every dimension whose
    # coefficients all survive decodes exactly as before, the rest are finite
    kept = ids[: max(1, len(ids) // 2)]
    short = tok.decode(kept)
    assert not short.valid and np.all(np.isfinite(short.actions))
    n_chars = sum(len(tok._id_to_str[i]) for i in kept.tolist())
    whole = n_chars // T  # dimensions fully covered by the surviving prefix
    np.testing.assert_array_equal(short.actions[:, :whole], ref[:, :whole])
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


def expert_like_chunks(n: int, seed: int) -> np.ndarray:
    """Chunks [n, T, D] shaped like the scripted experts' normalised actions: saturated (+-1) x/y/z steps
    that decay once near the target, roll/pitch exactly zero, a decaying yaw, a gripper switching +-1."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    x = np.zeros((n, T, D))
    for i in range(n):
        for d in range(3):
            start, target = rng.integers(0, T), rng.uniform(-1, 1)
            x[i, :, d] = np.where(t < start, np.sign(target), target * 0.5 ** (t - start))
        x[i, :, 5] = rng.uniform(-0.3, 0.3) * 0.6**t
        x[i, :, 6] = np.where(t < rng.integers(0, 2 * T), 1.0, -1.0) * rng.choice([-1.0, 1.0])
    return x


def test_dimension_order_needs_fewer_tokens_on_expert_like_chunks():
    fit, held_out = expert_like_chunks(400, seed=0), expert_like_chunks(100, seed=1)
    tokens, actions = {}, {}
    for order in ("dimension", "frequency"):
        tok = FASTTokenizer(action_dim=D, chunk_len=T, scale=50.0, order=order).fit(fit)
        ids = tok.encode(held_out)
        tokens[order] = np.mean([len(r) for r in ids])
        actions[order] = tok.decode(ids).actions
    # same coefficients, so the same reconstruction; zero runs and per-dim patterns merge better
    np.testing.assert_allclose(actions["dimension"], actions["frequency"], atol=1e-6)
    assert tokens["dimension"] < 0.85 * tokens["frequency"], tokens

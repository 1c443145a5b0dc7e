"""Uniform (RT-2) and quantile/OpenVLA bin tokenizers: round-trip bounds, clipping, OpenVLA's exact ids."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from action_tokenizers import load_tokenizer
from action_tokenizers.quantile import OpenVLATokenizer, QuantileBinTokenizer
from action_tokenizers.uniform import UniformBinTokenizer
from action_tokenizers.vocab import ActionVocab

D = 7
finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    n_bins=st.integers(2, 1024),
    lo=st.floats(-10, 10),
    span=st.floats(1e-3, 20),
    u=arrays(np.float64, (5, 1, D), elements=st.floats(0, 1)),
)
def test_uniform_roundtrip_within_half_bin(n_bins, lo, span, u):
    tok = UniformBinTokenizer(n_bins=n_bins, action_dim=D, low=lo, high=lo + span)
    x = lo + u * span  # in range, [5, 1, D]
    ids = tok.encode(x)
    assert ids.min() >= 0 and ids.max() < n_bins
    rec = tok.decode(ids).actions
    half = span / n_bins / 2
    assert np.all(np.abs(rec.astype(np.float64) - x) <= half * (1 + 1e-6) + 1e-5 * (abs(lo) + span))


@settings(max_examples=40, deadline=None)
@given(x=arrays(np.float64, (4, 1, D), elements=finite))
def test_uniform_out_of_range_clips_to_end_bins(x):
    tok = UniformBinTokenizer(n_bins=256, action_dim=D)
    ids = tok.encode(x).reshape(x.shape)
    assert np.all(ids[x >= 1.0] == 255) and np.all(ids[x < -1.0] == 0)
    np.testing.assert_array_equal(ids, tok.encode(np.clip(x, -1, 1)).reshape(x.shape))
    assert np.all(np.abs(tok.decode(ids.reshape(4, D)).actions) <= 1.0)


def test_uniform_fit_range_learns_min_max():
    rows = np.stack([np.linspace(-3, 5, 50)] * D, axis=1)  # [50, D]
    tok = UniformBinTokenizer(n_bins=16, action_dim=D, fit_range=True).fit(rows)
    np.testing.assert_allclose(tok.low, -3.0)
    np.testing.assert_allclose(tok.high, 5.0)
    assert tok.encode(np.full((1, D), 5.0)).tolist() == [15] * D  # one chunk [T=1, D]
    assert tok.encode(np.full((1, D), -3.0)).tolist() == [0] * D
    # constant dimension: well-defined bins, exact round trip
    const = UniformBinTokenizer(n_bins=8, action_dim=1, fit_range=True).fit(np.full((10, 1), 2.0))
    assert abs(float(const.decode(const.encode([[2.0]])).actions[0, 0]) - 2.0) < 1e-6


def raw_data(seed=0, n=2000):
    """Raw actions [n, D] with per-dim scales of an EE-delta dataset, gripper in {0, 1}."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, [0.01, 0.01, 0.02, 0.05, 0.05, 0.1, 1.0], (n, D))
    x[:, -1] = rng.integers(0, 2, n)
    return x


@settings(max_examples=40, deadline=None)
@given(
    u=arrays(np.float64, (8, D), elements=st.floats(0, 1)),
    edges=st.sampled_from(["linspace", "quantile"]),
)
def test_quantile_roundtrip_within_half_bin(u, edges):
    tok = QuantileBinTokenizer(n_bins=256, action_dim=D, edges=edges).fit(raw_data())
    st_ = tok.normalizer.stats["action"]
    x = st_["q01"] + u * (st_["q99"] - st_["q01"])  # inside [q01, q99]: no clipping
    rec = tok.decode(tok.encode(x[:, None])).actions[:, 0].astype(np.float64)
    bound = tok.error_bound(x)
    if edges == "linspace":  # half the bin width: (2 / 255) / 2 in normalised units
        np.testing.assert_allclose(bound, np.broadcast_to((st_["q99"] - st_["q01"]) / 2 / 255, x.shape))
    assert np.all(np.abs(rec - x) <= bound * (1 + 1e-6) + 1e-6)


def test_quantile_bins_decode_point_masses_exactly():
    rows = raw_data(n=3000)  # gripper column is exactly 0 or 1
    tok = QuantileBinTokenizer(n_bins=256, action_dim=D, edges="quantile").fit(rows)
    rec = tok.decode(tok.encode(rows[:, None])).actions[:, 0]
    np.testing.assert_allclose(rec[:, -1], rows[:, -1], atol=1e-6)
    st_ = tok.normalizer.stats["action"]
    inside = (rows >= st_["q01"]) & (rows <= st_["q99"])  # outside, q99 clipping adds its own error
    assert np.all((np.abs(rec - rows) <= tok.error_bound(rows) + 1e-6)[inside])


def test_quantile_edges_follow_the_data(tmp_path):
    rows = raw_data(n=4000)
    tok = QuantileBinTokenizer(n_bins=16, action_dim=D, edges="quantile").fit(rows)
    ids = tok.encode(rows[:, None]).reshape(-1, D)
    counts = np.stack([np.bincount(ids[:, d], minlength=16) for d in range(3)])  # continuous dims
    assert counts.min() > 0.5 * counts.mean()  # roughly equal mass per bin
    again = load_tokenizer(tok.save(tmp_path / "q.json"))
    assert again.edges == "quantile"
    np.testing.assert_array_equal(again.q_edges, tok.q_edges)


def test_openvla_worked_example_by_hand():
    """OpenVLA: a_n = 2 (a - q01) / (q99 - q01) - 1, b = digitize(a_n, linspace(-1, 1, 256)), 32000 - b."""
    q01, q99 = -0.5, 1.5  # the column's min and max
    rows = np.zeros((101, 1))
    rows[:, 0] = np.linspace(q01, q99, 101)  # q01/q99 of this column are q01 + 1% / 99% of the span
    tok = OpenVLATokenizer(action_dim=1).fit(rows)
    lo, hi = tok.normalizer.stats["action"]["q01"][0], tok.normalizer.stats["action"]["q99"][0]
    assert lo == pytest.approx(-0.48) and hi == pytest.approx(1.48)
    vocab = ActionVocab.openvla(32000, 256)
    by_hand = {
        0.5: (128, 31872, 0.0),  # a_n = 0 lies in [bins[127], bins[128]) = [-1/255, 1/255)
        1.6: (256, 31744, 1 - 1 / 255),  # a_n clipped to 1.0, the last edge: b = 256 -> centre 254
        5.0: (256, 31744, 1 - 1 / 255),  # beyond q99: clipped to 1
        -0.48: (1, 31999, -1 + 1 / 255),  # a_n = -1: b = 1, centre 0
        0.51: (129, 31871, 2 / 255),  # a_n = 0.01: bins[128] = 1/255 <= 0.01 < 3/255
    }
    for a, (b, lm_id, centre) in by_hand.items():
        ids = tok.encode([[a]])
        assert ids.tolist() == [b - 1], a
        assert vocab.to_lm(ids).tolist() == [lm_id], a
        # Decode an OpenVLA model's output: LM id -> our id -> bin centre -> raw
        ours, is_action = vocab.from_lm([lm_id])
        assert is_action.all() and ours.tolist() == [b - 1]
        raw = tok.decode(ours).actions[0, 0]
        assert raw == pytest.approx(0.5 * (centre + 1) * (hi - lo) + lo, abs=1e-6), a
    # OpenVLA's decode formula literally: clip(vocab - id - 1, 0, 254) -> centres
    bins = np.linspace(-1, 1, 256)
    centres = (bins[:-1] + bins[1:]) / 2
    ids = np.arange(31744, 32000)
    literal = centres[np.clip(32000 - ids - 1, 0, 254)]
    ours, _ = vocab.from_lm(ids)
    np.testing.assert_allclose(tok.decode_normalized(ours[:, None])[:, 0], literal)


def test_openvla_mask_leaves_dims_unnormalised():
    rows = raw_data()
    mask = [True] * 6 + [False]  # OpenVLA keeps the gripper as is
    tok = OpenVLATokenizer(action_dim=D, mask=mask).fit(rows)
    x = np.array([[0.0] * 6 + [1.0]])
    # gripper 1.0 -> a_n = 1.0 -> b = 256 -> id 255; 0.0 -> a_n = 0 -> id 127
    assert tok.encode(x)[-1] == 255
    assert tok.encode(np.zeros((1, D)))[-1] == 127
    rec = tok.decode(tok.encode(x)).actions[0]
    assert rec[-1] == pytest.approx(1 - 1 / 255, abs=1e-6)


def test_raw_input_space_and_normaliser_is_the_project_one():
    from vla.core.normalizer import Normalizer

    tok = QuantileBinTokenizer(action_dim=D).fit(raw_data())
    assert tok.input_space == "raw" and isinstance(tok.normalizer, Normalizer)
    assert UniformBinTokenizer().input_space == "normalized"

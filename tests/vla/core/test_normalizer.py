"""Normaliser and streaming statistics: exactness, merge, sketch accuracy, modes, inverse, persistence."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vla.core.normalizer import MODES, Normalizer, StatsAccumulator, compute_stats, rank_error_bound

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=64)


def batches(dim: int):
    return st.lists(
        arrays(np.float64, st.tuples(st.integers(1, 30), st.just(dim)), elements=finite),
        min_size=1,
        max_size=6,
    )


@settings(max_examples=40, deadline=None)
@given(batches(3))
def test_streaming_moments_equal_numpy(parts):
    acc = StatsAccumulator(3)
    for p in parts:
        acc.update(p)
    x = np.concatenate(parts)
    r = acc.result()
    np.testing.assert_allclose(r["mean"], x.mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(r["std"], x.std(0), rtol=1e-7, atol=1e-7)
    np.testing.assert_array_equal(r["min"], x.min(0))
    np.testing.assert_array_equal(r["max"], x.max(0))
    # exact while below capacity: the same as numpy's linear-interpolated quantiles
    np.testing.assert_allclose(r["q01"], np.quantile(x, 0.01, axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r["q99"], np.quantile(x, 0.99, axis=0), rtol=1e-12, atol=1e-12)
    assert r["count"].tolist() == [x.shape[0]]


@settings(max_examples=30, deadline=None)
@given(batches(2), batches(2))
def test_merge_equals_sequential(a_parts, b_parts):
    a, b, seq = (
        StatsAccumulator(2, capacity=16),
        StatsAccumulator(2, capacity=16),
        StatsAccumulator(2, capacity=16),
    )
    for p in a_parts:
        a.update(p)
        seq.update(p)
    for p in b_parts:
        b.update(p)
        seq.update(p)
    b_before = b.result()
    merged = a.merge(b).result()
    expect = seq.result()
    for k in ("mean", "std", "min", "max", "count"):
        np.testing.assert_allclose(merged[k], expect[k], rtol=1e-7, atol=1e-7)
    for k in b_before:  # merge leaves its argument untouched
        np.testing.assert_array_equal(b.result()[k], b_before[k])
    x = np.concatenate(a_parts + b_parts)
    n = x.shape[0]
    e = rank_error_bound(n, 16)
    for q, name in ((0.01, "q01"), (0.99, "q99")):
        lo = np.quantile(x, max(0.0, q - e), axis=0, method="lower")
        hi = np.quantile(x, min(1.0, q + e), axis=0, method="higher")
        assert np.all(merged[name] >= lo - 1e-12) and np.all(merged[name] <= hi + 1e-12)


def test_sketch_accuracy_and_bounded_memory_on_large_stream():
    rng = np.random.default_rng(0)
    acc = StatsAccumulator(4, capacity=1024)
    chunks = [rng.standard_normal((997, 4)) * [1, 10, 0.1, 3] + [0, 5, -2, 1] for _ in range(200)]
    for c in chunks:
        acc.update(c)
    x = np.concatenate(chunks)
    n = x.shape[0]
    assert acc.memory_rows() < 1024 * (2 + np.log2(n / 1024))
    r = acc.result()
    bound = rank_error_bound(n, 1024)
    for q, name in ((0.01, "q01"), (0.99, "q99")):
        # rank of the returned value in the exact data, per dim
        ranks = (x < r[name]).sum(axis=0) / n
        assert np.all(np.abs(ranks - q) <= bound), (name, ranks, bound)
        assert np.all(np.abs(ranks - q) <= 0.002)  # observed accuracy, far inside the bound
    # deterministic: the same stream gives the same numbers
    again = StatsAccumulator(4, capacity=1024)
    for c in chunks:
        again.update(c)
    for k, v in again.result().items():
        np.testing.assert_array_equal(v, r[k])


def test_accumulator_rejects_bad_input():
    acc = StatsAccumulator(3)
    with pytest.raises(ValueError, match=r"expected shape \[\.\.\., 3\]"):
        acc.update(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="non-finite value at row 1, dim 2"):
        acc.update(np.array([[0, 0, 0], [0, 0, np.nan]]))
    with pytest.raises(ValueError, match="no data"):
        acc.result()


def _stats(x):
    return compute_stats(x)


dims = st.integers(1, 5)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_inverse_and_range_properties(data):
    d = data.draw(dims)
    x = data.draw(arrays(np.float64, (data.draw(st.integers(2, 40)), d), elements=finite))
    stats = {"a": _stats(x)}
    for mode in ("minmax", "meanstd", "q99", "identity"):
        norm = Normalizer(stats, {"a": mode})
        y = norm.normalize("a", x)
        assert y.shape == x.shape and y.dtype == x.dtype
        back = norm.unnormalize("a", y)
        st_ = stats["a"]
        if mode == "q99":
            assert np.all(np.abs(y) <= 1.0)
            lo, hi = st_["q01"], st_["q99"]
            inside = (x >= lo) & (x <= hi) & ((hi - lo) >= 1e-8)
            np.testing.assert_allclose(back[inside], x[inside], rtol=1e-9, atol=1e-9)
        elif mode == "minmax":
            const = (st_["max"] - st_["min"]) < 1e-8
            assert np.all(np.abs(y[:, ~const]) <= 1.0 + 1e-12)
            np.testing.assert_allclose(back, x, rtol=1e-9, atol=1e-9)
        else:
            np.testing.assert_allclose(back, x, rtol=1e-9, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(st.floats(-100, 100, allow_nan=False), st.integers(1, 4), st.sampled_from(["q99", "minmax"]))
def test_constant_dims_map_to_zero_and_back(value, d, mode):
    x = np.full((10, d), value)
    x[:, 0] = np.linspace(-1, 1, 10)  # one varying dim next to the constant ones
    norm = Normalizer({"s": _stats(x)}, {"s": mode})
    y = norm.normalize("s", x)
    assert np.all(y[:, 1:] == 0.0)
    np.testing.assert_allclose(norm.unnormalize("s", y)[:, 1:], value, atol=1e-9)


def test_q99_clips_outliers_and_minmax_is_affine():
    x = np.linspace(0, 100, 101)[:, None]
    n = Normalizer({"a": _stats(x), "b": _stats(x)}, {"a": "q99", "b": "minmax"})
    y = n.normalize("a", np.array([[-50.0], [1.0], [50.0], [99.0], [500.0]]))
    np.testing.assert_allclose(y[:, 0], [-1.0, -1.0, (50 - 50) / 49, 1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(n.normalize("b", np.array([[0.0], [50.0], [100.0]]))[:, 0], [-1, 0, 1])


def test_torch_and_numpy_agree_and_inputs_are_not_mutated():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 7)).astype(np.float32)
    stats = {"action": _stats(x)}
    for mode in MODES:
        n = Normalizer(stats, {"action": mode})
        xn, xt = x.copy(), torch.from_numpy(x.copy()).reshape(8, 8, 7)
        yn = n.normalize("action", xn)
        yt = n.normalize("action", xt)
        assert isinstance(yt, torch.Tensor) and yt.dtype == torch.float32 and yt.shape == (8, 8, 7)
        np.testing.assert_allclose(yt.reshape(64, 7).numpy(), yn, atol=1e-6)
        np.testing.assert_array_equal(xn, x)
        np.testing.assert_array_equal(xt.reshape(64, 7).numpy(), x)
        bt = n.unnormalize("action", yt)
        np.testing.assert_allclose(bt.reshape(64, 7).numpy(), n.unnormalize("action", yn), atol=1e-5)
        assert yt is not xt and yn is not xn


def test_shape_and_key_errors():
    n = Normalizer({"action": _stats(np.random.default_rng(0).normal(size=(10, 7)))}, {"action": "q99"})
    with pytest.raises(ValueError, match=r"'action': expected shape \[\.\.\., 7\], got \(3, 6\)"):
        n.normalize("action", np.zeros((3, 6)))
    with pytest.raises(ValueError, match="no mode for key 'state'"):
        n.normalize("state", np.zeros(15))
    with pytest.raises(ValueError, match="unknown mode 'bogus'"):
        Normalizer({}, {"a": "bogus"})
    with pytest.raises(ValueError, match="'a' has mode 'meanstd' but no statistics"):
        Normalizer({}, {"a": "meanstd"})
    with pytest.raises(ValueError, match="needs stat 'q99'"):
        Normalizer({"a": {"q01": [0.0]}}, {"a": "q99"})


def test_save_load_roundtrip_and_bad_files(tmp_path):
    x = np.random.default_rng(2).normal(size=(50, 3))
    n = Normalizer({"state": _stats(x), "action": _stats(x * 2)}, {"state": "meanstd", "action": "q99"})
    path = n.save(tmp_path / "normalizer.json")
    m = Normalizer.load(path)
    assert m.modes == n.modes
    for key in ("state", "action"):
        np.testing.assert_array_equal(m.normalize(key, x), n.normalize(key, x))
    assert Normalizer.from_dict(json.loads(path.read_text())).to_dict() == n.to_dict()

    with pytest.raises(FileNotFoundError, match="missing.json"):
        Normalizer.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        Normalizer.load(bad)
    d = n.to_dict()
    d["stats"]["action"]["q99"] = ["x", 1, 2]
    bad.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=r"bad.json.*'action'.*'q99'"):
        Normalizer.load(bad)
    d = n.to_dict()
    d["stats"]["action"]["q99"] = [1.0]
    bad.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=r"bad.json.*'action'.*different lengths"):
        Normalizer.load(bad)
    bad.write_text(json.dumps({"modes": {}}))
    with pytest.raises(ValueError, match="bad.json.*'stats'"):
        Normalizer.load(bad)

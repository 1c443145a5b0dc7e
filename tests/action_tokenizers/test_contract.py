"""The ActionTokenizer contract, checked for every registry entry: shapes, batching, persistence, errors."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from action_tokenizers import (
    TOKENIZERS,
    ActionTokenizer,
    DecodeResult,
    get_tokenizer_class,
    list_tokenizers,
    load_tokenizer,
    make_tokenizer,
)

T, D = 10, 7

NAMES = ["fast", "openvla", "quantile", "uniform"]


def test_registry_lists_builtins():
    assert list_tokenizers() == NAMES
    with pytest.raises(ValueError, match="unknown action tokenizer 'nope'"):
        make_tokenizer("nope")
    with pytest.raises(ValueError, match="already registered"):
        TOKENIZERS.register("uniform", type("Other", (), {}))


@pytest.mark.parametrize("name", NAMES)
def test_registry_entry_is_named_by_its_key(name):
    """The class's `name` (written to JSON as `type`) is its table key, so a saved file loads back."""
    assert get_tokenizer_class(name).name == name


@pytest.mark.parametrize("name", NAMES)
def test_protocol_and_shapes(name, fitted_tokenizers, smooth):
    tok = fitted_tokenizers[name]
    assert isinstance(tok, ActionTokenizer)
    assert tok.action_dim == D and tok.chunk_len == T
    assert tok.input_space in ("normalized", "raw")
    x = smooth(3, seed=5)  # [3, T, D]
    ids = tok.encode(x)
    out = tok.decode(ids)
    assert isinstance(out, DecodeResult)
    assert out.actions.shape == (3, T, D) and out.actions.dtype == np.float32
    assert out.valid.shape == (3,) and out.valid.all()
    if tok.tokens_per_chunk is None:
        assert isinstance(ids, list) and len(ids) == 3
        assert all(1 <= len(r) <= tok.max_tokens for r in ids)
    else:
        assert ids.shape == (3, tok.tokens_per_chunk) and ids.dtype == np.int64


@pytest.mark.parametrize("name", NAMES)
def test_batched_and_unbatched_agree(name, fitted_tokenizers, smooth):
    tok = fitted_tokenizers[name]
    x = smooth(6, seed=7).reshape(2, 3, T, D)  # two leading dims
    ids = tok.encode(x)
    batched = tok.decode(ids)
    assert batched.actions.shape == (2, 3, T, D) and batched.valid.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            single_ids = tok.encode(x[i, j])
            np.testing.assert_array_equal(np.asarray(single_ids), np.asarray(ids[i][j]))
            single = tok.decode(single_ids)
            assert single.actions.shape == (T, D) and single.valid.shape == ()
            np.testing.assert_array_equal(single.actions, batched.actions[i, j])


@pytest.mark.parametrize("name", NAMES)
def test_save_load_gives_identical_outputs(name, fitted_tokenizers, tmp_path, smooth):
    tok = fitted_tokenizers[name]
    path = tok.save(tmp_path / "tok.json")
    data = json.loads(path.read_text())  # JSON only, no pickles
    assert data["type"] == name and data["format"] == "vla.action_tokenizer"
    again = load_tokenizer(path)
    assert type(again) is type(tok) and again.vocab_size == tok.vocab_size
    x = smooth(20, seed=11) * 1.3  # includes out-of-range values
    a, b = tok.encode(x), again.encode(x)
    for ra, rb in zip(a, b):
        np.testing.assert_array_equal(ra, rb)
    np.testing.assert_array_equal(tok.decode(a).actions, again.decode(b).actions)
    assert type(tok).load(path).to_dict() == tok.to_dict()


@pytest.mark.parametrize("name", NAMES)
def test_encode_rejects_bad_input(name, fitted_tokenizers):
    tok = fitted_tokenizers[name]
    with pytest.raises(ValueError, match=r"expected actions of shape \[\.\.\., T=10, D=7\], got \(10, 6\)"):
        tok.encode(np.zeros((T, 6)))
    with pytest.raises(ValueError, match=r"got \(7,\)"):
        tok.encode(np.zeros(D))
    bad = np.zeros((T, D))
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"finite.*index \(3, 2\)"):
        tok.encode(bad)
    bad[3, 2] = np.inf
    with pytest.raises(ValueError, match="finite"):
        tok.encode(bad[None])
    extra = {"fit_range": True} if name == "uniform" else {}
    with pytest.raises(ValueError, match="not fitted"):
        make_tokenizer(name, action_dim=D, chunk_len=T, **extra).encode(np.zeros((T, D)))
    with pytest.raises(ValueError, match=r"fit: expected"):
        make_tokenizer(name, action_dim=D, chunk_len=T).fit(np.zeros((5, 3)))


@pytest.mark.parametrize("name", NAMES)
def test_decode_never_raises_on_malformed_ids(name, fitted_tokenizers, smooth):
    tok = fitted_tokenizers[name]
    good = tok.encode(smooth(1, seed=3)[0])
    good = np.asarray(good)
    cases = [
        good[:-2],  # too short
        np.concatenate([good, good[:3]]),  # too long
        np.array([-1, *good[1:]]),  # negative id
        np.array([tok.vocab_size + 5, *good[1:]]),  # id past the vocabulary
        np.array([], dtype=np.int64),  # nothing
        [1.5, 2.0],  # not integers
        "garbage",  # not a sequence of ids
    ]
    for ids in cases:
        out = tok.decode(ids)
        assert out.actions.shape == (T, D) and np.all(np.isfinite(out.actions))
        assert not bool(out.valid), ids
    ragged = tok.decode([good, good[:-1], good])
    assert ragged.actions.shape == (3, T, D)
    assert ragged.valid.tolist() == [True, False, True]
    np.testing.assert_array_equal(ragged.actions[0], tok.decode(good).actions)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=arrays(np.float64, (2, T, D), elements=st.floats(-5, 5, allow_nan=False)))
def test_ids_stay_in_reserved_range(fitted_tokenizers, x):
    for name in NAMES:
        tok = fitted_tokenizers[name]
        ids = tok.encode(x)
        for row in ids:
            row = np.asarray(row)
            assert row.min() >= 0 and row.max() < tok.vocab_size
            assert row.shape[0] <= tok.max_tokens


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="action tokenizer file not found"):
        load_tokenizer(tmp_path / "missing.json")
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"format": "vla.action_tokenizer", "type": "nope"}))
    with pytest.raises(ValueError, match="unknown action tokenizer 'nope'"):
        load_tokenizer(p)
    p.write_text(json.dumps({"format": "vla.action_tokenizer", "type": "uniform", "action_dim": 7}))
    with pytest.raises(ValueError, match=f"action tokenizer {p}: malformed 'uniform'"):
        load_tokenizer(p)
    p.write_text("[1, 2]")
    with pytest.raises(ValueError, match="'type' field"):
        load_tokenizer(p)


@pytest.mark.parametrize("name", NAMES)
def test_decode_accepts_torch_ids(name, fitted_tokenizers, smooth):
    import torch

    tok = fitted_tokenizers[name]
    x = smooth(3, seed=21)
    ids = tok.encode(x)
    ref = tok.decode(ids)
    if isinstance(ids, list):  # FAST: ragged, decode each chunk's ids as a tensor
        for i, row in enumerate(ids):
            np.testing.assert_array_equal(tok.decode(torch.as_tensor(row)).actions, ref.actions[i])
    else:
        out = tok.decode(torch.as_tensor(ids))
        np.testing.assert_array_equal(out.actions, ref.actions)
        assert out.valid.tolist() == [True] * 3


@pytest.fixture(scope="module")
def reloaded(fitted_tokenizers, tmp_path_factory):
    d = tmp_path_factory.mktemp("saved")
    return {n: load_tokenizer(t.save(d / f"{n}.json")) for n, t in fitted_tokenizers.items()}


@settings(max_examples=25, deadline=None)
@given(x=arrays(np.float64, (3, T, D), elements=st.floats(-2, 2, allow_nan=False)))
def test_save_load_identical_for_any_input(fitted_tokenizers, reloaded, x):
    for name in NAMES:
        a, b = fitted_tokenizers[name].encode(x), reloaded[name].encode(x)
        for ra, rb in zip(a, b):
            np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(
            fitted_tokenizers[name].decode(a).actions, reloaded[name].decode(b).actions
        )

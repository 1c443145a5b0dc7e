"""`vla tokenizer fit | report` on a real zarr episode store and on .npy/.npz files."""

import json

import numpy as np
import pytest

from action_tokenizers import load_tokenizer
from action_tokenizers.evaluation import chunk_episodes
from vla import cli
from vla.core.normalizer import Normalizer
from vla.data.store import EpisodeStore
from vla.core.types import ACTION_NAMES, FeatureSpec, FeatureType

D = 7


def episodes(n=12, seed=0):
    """Smooth EE-delta-like episodes [T_e, 7] with a gripper that closes once."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = np.arange(rng.integers(35, 60))[:, None] / 10.0
        a = 0.02 * np.sin(t * rng.uniform(0.3, 1.5, D) + rng.uniform(0, 6, D))
        a[:, -1] = (t[:, 0] < rng.uniform(1, 3)).astype(float)
        out.append(a.astype(np.float32))
    return out


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "demos.zarr"
    feats = {"action": FeatureSpec(FeatureType.ACTION, (D,), "float32", ACTION_NAMES)}
    store = EpisodeStore.create(path, feats, fps=10)
    for i, ep in enumerate(episodes()):
        store.append_episode({"action": ep}, {"instruction": "pick", "seed": i})
    return path


@pytest.mark.parametrize("name", ["fast", "openvla", "uniform"])
def test_fit_then_report_on_a_store(name, store_path, tmp_path, capsys):
    out = tmp_path / "tok"
    assert cli.main(["tokenizer", "fit", str(store_path), f"tokenizer={name}", f"out={out}"]) == 0
    text = capsys.readouterr().out
    assert "tokens per 10-step window" in text and "dpitch" in text
    tok = load_tokenizer(out / "action_tokenizer.json")
    assert tok.name == name
    norm = Normalizer.load(out / "normalizer.json")
    fit_rep = json.loads((out / "fit_report.json").read_text())
    assert fit_rep["invalid_decodes"] == 0 and len(fit_rep["mae_raw_per_dim"]) == D
    js = tmp_path / "rep.json"
    assert (
        cli.main(
            ["tokenizer", "report", str(out / "action_tokenizer.json"), str(store_path), f"json_out={js}"]
        )
        == 0
    )
    rep = json.loads(js.read_text())
    expected_tokens = 70.0 if name != "fast" else None
    if expected_tokens:
        assert rep["tokens_per_window_mean"] == expected_tokens
    else:
        assert 7 <= rep["tokens_per_window_mean"] < 70
    # the errors the report prints are the ones we get by running the pipeline by hand
    eps = [np.asarray(e, dtype=np.float64) for e in episodes()]
    chunks = chunk_episodes(eps, 10).reshape(-1, tok.chunk_len, D)
    space = norm.normalize("action", chunks) if tok.input_space == "normalized" else chunks
    dec = tok.decode(tok.encode(space)).actions
    rec = norm.unnormalize("action", dec) if tok.input_space == "normalized" else dec
    np.testing.assert_allclose(rep["max_raw_per_dim"], np.abs(rec - chunks).reshape(-1, D).max(0), rtol=1e-4)


def test_fit_from_npz_and_npy(tmp_path, capsys):
    eps = episodes(6, seed=3)
    np.savez(tmp_path / "a.npz", *eps)
    assert (
        cli.main(["tokenizer", "fit", str(tmp_path / "a.npz"), "tokenizer=quantile", f"out={tmp_path}/q"])
        == 0
    )
    np.save(tmp_path / "a.npy", np.concatenate(eps))
    args = ["tokenizer", "fit", str(tmp_path / "a.npy"), "tokenizer=fast", "tokenizer.vocab_size=128"]
    assert cli.main([*args, "holdout=0", f"out={tmp_path}/f"]) == 0
    assert load_tokenizer(tmp_path / "f" / "action_tokenizer.json").vocab_size <= 128
    assert load_tokenizer(tmp_path / "f" / "action_tokenizer.json").order == "dimension"  # the preset's
    assert cli.main([*args, "tokenizer.order=frequency", "holdout=0", f"out={tmp_path}/g"]) == 0
    assert load_tokenizer(tmp_path / "g" / "action_tokenizer.json").order == "frequency"
    assert cli.main([*args, "tokenizer.order=time", f"out={tmp_path}/h"]) == 2
    assert "order must be one of" in capsys.readouterr().err
    capsys.readouterr()


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    assert cli.main(["tokenizer", "fit", str(tmp_path / "missing.zarr")]) == 2
    assert "action source not found" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.zeros((4, 5, 6, 7)))
    assert cli.main(["tokenizer", "fit", str(tmp_path / "bad.npy")]) == 2
    assert "expected actions [E, T, D] or [N, D]" in capsys.readouterr().err
    np.save(tmp_path / "d6.npy", np.zeros((40, 6)))
    assert cli.main(["tokenizer", "fit", str(tmp_path / "d6.npy"), "tokenizer=uniform"]) == 2
    err = capsys.readouterr().err
    assert "d6.npy: actions have D=6" in err and "action_dim=7" in err
    assert cli.main(["tokenizer", "report", str(tmp_path / "none.json"), str(tmp_path / "d6.npy")]) == 2
    assert "action tokenizer file not found" in capsys.readouterr().err


def test_config_errors_are_one_clear_line(capsys):
    assert cli.main(["tokenizer", "fit", "tokenizer=nope"]) == 2
    assert "unknown tokenizer 'nope'; choose one of: fast, openvla" in capsys.readouterr().err
    assert cli.main(["tokenizer", "report"]) == 2
    assert "missing value for 'path'" in capsys.readouterr().err

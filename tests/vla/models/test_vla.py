"""The VLA: a tiny one overfits 2 real pick episodes (>= 95% action-token accuracy), save -> load gives
identical predictions, constrained decoding only emits action ids (KV-cached == recomputed), and bad
checkpoints or configs fail with clear errors."""

import json
import shutil

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from action_tokenizers import make_tokenizer
from vla.backbones.config import compose_model_config
from vla.core.normalizer import Normalizer, compute_stats
from vla.data.windows import WindowDataset, WindowSpec
from vla.models.vla import VLA
from vla.processor import ProcessorConfig

RNG = np.random.default_rng(0)
ACTIONS = (RNG.standard_normal((200, 7)) * 0.05).astype(np.float32)
NORM = Normalizer(
    {"action": compute_stats(ACTIONS), "state": compute_stats(RNG.standard_normal((200, 15)))},
    {"action": "q99", "state": "meanstd"},
)


def _tiny(tokenizer="uniform", chunk_len=2, seed=0, n_obs=1):
    torch.manual_seed(seed)
    tok = make_tokenizer(tokenizer, action_dim=7, chunk_len=chunk_len).fit(ACTIONS.reshape(-1, chunk_len, 7))
    cfg = ProcessorConfig(cameras=["static", "wrist"], state_dim=15, n_obs=n_obs)
    return VLA.build(compose_model_config("tiny"), cfg, tok, NORM).eval()


def _obs(seed):
    r = np.random.default_rng(seed)
    return {
        "images/static": r.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        "images/wrist": r.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        "state": r.standard_normal(15).astype(np.float32),
        "instruction": "pick up the blue block",
    }


@pytest.fixture(scope="module")
def overfit_run(pick_store, tmp_path_factory):
    from vla.commands.train import load_config, run

    out = tmp_path_factory.mktemp("overfit")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before conftest's per-test one-thread fixture
    cfg = load_config(
        [
            str(pick_store),
            f"out={out}",
            "val_episodes=0",
            "model.vision.image_size=32",
            "model.vision.hf.patch_size=8",
            "trainer.steps=160",
            "trainer.batch_size=16",  # two pick episodes hold 30 samples
            "trainer.lr=3e-3",
            "trainer.warmup_steps=10",
            "trainer.progress=false",
            "trainer.log_every=10",
        ]
    )
    try:
        return run(cfg)
    finally:
        torch.set_num_threads(threads)


def test_tiny_vla_overfits_two_episodes(pick_store, overfit_run):
    assert overfit_run.status == "done" and overfit_run.wall_time_s < 60
    model = VLA.from_pretrained(overfit_run.checkpoint)
    ds = WindowDataset(pick_store, WindowSpec(obs_keys=["images/static", "images/wrist", "state"]))
    batch = model.processor.collate([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        out = model(batch)
    assert all(torch.is_tensor(v) and v.numel() == 1 for v in out.values())  # losses and metrics only
    assert float(out["action_acc"]) >= 0.95
    assert float(out["action_l1"]) < 0.01  # decoded raw actions, teacher forced


def test_save_load_identical_predictions(overfit_run, pick_store, tmp_path):
    model = VLA.from_pretrained(overfit_run.checkpoint)
    model.save_pretrained(tmp_path / "copy")
    again = VLA.from_pretrained(tmp_path / "copy")
    ds = WindowDataset(pick_store, WindowSpec(obs_keys=["images/static", "images/wrist", "state"]))
    for i in (0, 7, 20):
        s = ds[i]
        obs = {k: s[k][0].numpy() for k in ("images/static", "images/wrist", "state")}
        obs["instruction"] = s["instruction"]
        a, b = model.predict_action(obs), again.predict_action(obs)
        assert np.array_equal(a, b)
        np.testing.assert_allclose(a[0], s["action"][0].numpy(), atol=0.02)  # it learnt the demo
    for f in (
        "config.json",
        "model.safetensors",
        "normalizer.json",
        "action_tokenizer.json",
        "processor.json",
    ):
        assert (tmp_path / "copy" / f).is_file()
    assert json.loads((tmp_path / "copy" / "config.json").read_text())["model_type"] == "vla"


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), tokenizer=st.sampled_from(["uniform", "fast"]))
def test_constrained_decoding_only_emits_action_ids(seed, tokenizer):
    torch.set_num_threads(1)
    model = _tiny(tokenizer, chunk_len=2, seed=seed)
    inputs = model.processor.preprocess([_obs(seed)])
    cached = model.generate_action_ids(inputs, use_cache=True)
    full = model.generate_action_ids(inputs, use_cache=False)
    assert torch.equal(cached, full)
    allowed = set(model.processor.action_lm_ids.tolist())
    if model.processor.fixed_length is None:  # FAST may end with EOS, then pads
        allowed |= {model.processor.text_tokenizer.eos_token_id, model.processor.text_tokenizer.pad_token_id}
    assert set(cached.flatten().tolist()) <= allowed


def test_constraint_overrides_a_model_that_prefers_text():
    model = _tiny("uniform", chunk_len=1)
    inputs = model.processor.preprocess([_obs(1)])
    gen = model.vlm.generate(
        inputs["input_ids"], inputs["attention_mask"], images=inputs["images"], state=inputs["state"],
        max_new_tokens=7, eos_token_id=None,
    )  # fmt: skip
    action_ids = model.processor.action_lm_ids
    assert not torch.isin(gen.tokens, action_ids).all()  # unconstrained, the untrained model emits text
    ids = model.generate_action_ids(inputs)
    assert torch.isin(ids, action_ids).all()
    chunk = model.predict_action(_obs(1))
    assert chunk.shape == (1, 7) and np.all(np.isfinite(chunk))
    out = model.act(inputs)  # predict_action = preprocess -> act -> postprocess
    assert set(out) == {"action_ids"} and torch.equal(out["action_ids"], ids)
    np.testing.assert_array_equal(model.processor.postprocess(out)[0], chunk)


def test_bad_checkpoints_fail_clearly(tmp_path):
    model = _tiny("uniform", chunk_len=1)
    path = model.save_pretrained(tmp_path / "ck")
    bad = tmp_path / "missing"
    shutil.copytree(path, bad)
    (bad / "action_tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="action_tokenizer.json"):
        VLA.from_pretrained(bad)
    wrong = tmp_path / "wrong"
    shutil.copytree(path, wrong)
    proc = json.loads((wrong / "processor.json").read_text())
    proc["config"]["n_obs"] = 3  # state encoder built for 1 frame, processor says 3
    (wrong / "processor.json").write_text(json.dumps(proc))
    with pytest.raises(ValueError, match="incompatible config"):
        VLA.from_pretrained(wrong)
    vlm_ck = tmp_path / "vlm"
    model.vlm.save_pretrained(vlm_ck)
    with pytest.raises(ValueError, match="model_type"):
        VLA.from_pretrained(vlm_ck)
    with pytest.raises(FileNotFoundError, match="not found"):
        VLA.from_pretrained(tmp_path / "nope")


def test_history_model_uses_every_frame():
    model = _tiny("uniform", chunk_len=1, n_obs=2)
    assert model.vlm.cfg.max_cameras == 4 and model.vlm.cfg.state.dim == 30
    a = model.processor.preprocess([_obs(1), _obs(2)])
    b = model.processor.preprocess([_obs(3), _obs(2)])
    with torch.no_grad():
        la = model.vlm(a["input_ids"], images=a["images"], state=a["state"]).logits[0, -1]
        lb = model.vlm(b["input_ids"], images=b["images"], state=b["state"]).logits[0, -1]
    assert not torch.allclose(la, lb)  # the older frame changes the prediction

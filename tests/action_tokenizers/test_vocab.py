"""LM vocabulary mapping: append special tokens (real HF fast tokenizer), OpenVLA overwrite, masks."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from action_tokenizers.vocab import (
    ActionVocab,
    append_action_tokens,
    lm_sequence,
    make_action_vocab,
    openvla_vocab_for,
)

WORDS = ["<unk>", "<pad>", "</s>", "in", "what", "action", "should", "the", "robot", "take", "to", "pick"]


@pytest.fixture()
def text_tokenizer():
    """A small word-level tokenizer built locally (300 words), wrapped as a transformers fast tokenizer."""
    words = WORDS + [f"w{i}" for i in range(300 - len(WORDS))]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", eos_token="</s>"
    )


def test_append_mode_adds_tokens_to_a_copy(text_tokenizer):
    before = len(text_tokenizer)
    tok, vocab = append_action_tokens(text_tokenizer, 256)
    assert len(text_tokenizer) == before == 300  # the argument is not mutated
    assert vocab.mode == "append" and vocab.lm_vocab_size == len(tok) == 556
    assert vocab.lm_ids == tuple(range(300, 556))
    enc = tok("pick <act_5> robot <act_255>").input_ids
    assert enc == [11, 305, 8, 555]
    assert tok.decode([vocab.lm_ids[7]]) == "<act_7>"
    # re-adding to a tokenizer that has them (reloaded checkpoint) reuses the ids
    tok2, vocab2 = append_action_tokens(tok, 256)
    assert vocab2 == vocab and len(tok2) == len(tok)


def test_append_mode_resizes_a_real_model_and_constrains_generation(text_tokenizer):
    tok, vocab = append_action_tokens(text_tokenizer, 16)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(text_tokenizer), n_embd=16, n_layer=1, n_head=2))
    model.resize_token_embeddings(vocab.lm_vocab_size)
    assert model.get_input_embeddings().weight.shape[0] == 316
    prompt = torch.tensor([tok("what action should the robot take to pick").input_ids])
    with torch.no_grad():
        logits = model(prompt).logits[:, -1]  # [1, V]
    masked = vocab.mask_logits(logits)
    nxt = int(masked.argmax(-1))
    tok_ids, is_action = vocab.from_lm([nxt])
    assert is_action.all() and 0 <= tok_ids[0] < 16
    assert torch.isinf(masked).sum() == 316 - 16
    # EOS can be allowed as well
    mask = vocab.logits_mask(316, extra_ids=[tok.eos_token_id])
    assert mask.sum() == 17 and mask[tok.eos_token_id]


def test_openvla_overwrite_mapping():
    vocab = ActionVocab.openvla(32000, 256)
    assert vocab.to_lm([0, 127, 255]).tolist() == [31999, 31872, 31744]
    assert vocab.allowed_ids().tolist() == list(range(31744, 32000))
    ids, is_action = vocab.from_lm([31999, 31744, 31743, 2, 32000, -1])
    assert ids.tolist() == [0, 255, -1, -1, -1, -1]
    assert is_action.tolist() == [True, True, False, False, False, False]
    assert lm_sequence(vocab, np.array([[3, 4]])) == [31996, 31995]
    with pytest.raises(ValueError, match=r"integer ids in \[0, 256\)"):
        vocab.to_lm([256])
    mask = vocab.logits_mask(32064)  # OpenVLA pads the embedding to 32064
    assert mask.sum() == 256 and not mask[32000:].any()
    logits = np.zeros((2, 32064))
    assert np.isinf(vocab.mask_logits(logits)).sum() == 2 * (32064 - 256)


def test_openvla_mode_for_a_hf_tokenizer_uses_the_base_vocab(text_tokenizer):
    tok, vocab = make_action_vocab("overwrite", text_tokenizer, 256)
    assert vocab == openvla_vocab_for(text_tokenizer, 256)
    assert vocab.lm_ids[0] == 299 and vocab.lm_ids[-1] == 44 and vocab.lm_vocab_size == 300
    assert len(tok) == 300
    with pytest.raises(ValueError, match="mode must be one of"):
        make_action_vocab("bogus", text_tokenizer, 4)


def test_roundtrip_dict_and_validation():
    vocab = ActionVocab.openvla(1000, 8)
    assert ActionVocab.from_dict(vocab.to_dict()) == vocab
    with pytest.raises(ValueError, match="distinct"):
        ActionVocab("append", (1, 1), 5)
    with pytest.raises(ValueError, match=r"lm_ids must lie in \[0, 5\)"):
        ActionVocab("append", (1, 7), 5)
    with pytest.raises(ValueError, match="too small"):
        vocab.logits_mask(500)
    with pytest.raises(ValueError, match="expected an object"):
        ActionVocab.from_dict({"mode": "append"})


def test_non_action_ids_flag_the_chunk_invalid(fitted_tokenizers, smooth):
    tok = fitted_tokenizers["uniform"]
    vocab = ActionVocab.openvla(32000, tok.vocab_size)
    ids = tok.encode(smooth(1)[0])
    lm = vocab.to_lm(ids)
    lm[5] = 13  # the model emitted a text token in the middle of the chunk
    back, is_action = vocab.from_lm(lm)
    assert not is_action[5]
    out = tok.decode(back)
    assert not out.valid and np.all(np.isfinite(out.actions))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 2048),
    base=st.integers(2048, 40000),
    data=st.data(),
)
def test_ids_map_into_the_reserved_block_and_back(n, base, data):
    ids = np.asarray(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=50)))
    for vocab in (
        ActionVocab.openvla(base, n),
        ActionVocab("append", tuple(range(base, base + n)), base + n),
    ):
        lm = vocab.to_lm(ids)
        reserved = (base - n, base) if vocab.mode == "overwrite" else (base, base + n)
        assert lm.min() >= reserved[0] and lm.max() < reserved[1]
        assert np.isin(lm, vocab.allowed_ids()).all()
        back, ok = vocab.from_lm(lm)
        assert ok.all() and np.array_equal(back, ids)

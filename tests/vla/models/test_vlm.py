"""VLM sequence assembly: token layout, answer-only labels, cameras/state/points, prefix-LM mask, errors."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vla.backbones.config import PointEncoderConfig, StateEncoderConfig
from vla.backbones.presets import tiny_vlm_config
from vla.models import VLM, token_accuracy
from vla.models.masks import drop_masked, position_ids_from_mask, prefix_lm_mask
from vla.backbones.text import IGNORE_INDEX, encode_prompt_answer, pad_batch


def _batch(tok, side="right"):
    pairs = [
        ("Question: What colour is the cube? Answer:", " red"),
        ("Question: Is it on the table?", " yes"),
    ]
    return pad_batch([encode_prompt_answer(tok, q, a) for q, a in pairs], tok.pad_token_id, side=side)


def test_sequence_layout_and_answer_only_labels():
    torch.manual_seed(0)
    cfg = tiny_vlm_config(
        "siglip",
        "token_merge",
        max_cameras=2,
        state=StateEncoderConfig(dim=7, num_tokens=2),
        points=PointEncoderConfig(num_groups=3, group_size=4),
    )
    model = VLM(cfg)
    b = _batch(model.tokenizer)
    m = 2 * 4 + 2 + 3  # 2 cameras x (16 patches / 4) + 2 state + 3 point tokens
    assert model.num_prefix_tokens(num_cameras=2) == m
    out = model(
        b["input_ids"],
        b["attention_mask"],
        b["labels"],
        images=torch.randn(2, 2, 3, 32, 32),
        state=torch.randn(2, 7),
        points=torch.randn(2, 20, 3),
    )
    L = b["input_ids"].shape[1]
    assert out.num_prefix_tokens == m and out.logits.shape[:2] == (2, m + L)
    assert (out.labels[:, :m] == IGNORE_INDEX).all()
    assert torch.equal(out.labels[:, m:], b["labels"])
    answer = " red"
    ids = model.tokenizer(answer, add_special_tokens=False)["input_ids"] + [model.tokenizer.eos_token_id]
    assert [t for t in b["labels"][0].tolist() if t != IGNORE_INDEX] == ids
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.state_encoder.net[0].weight.grad is not None
    assert model.point_encoder.proj.weight.grad is not None
    assert model.camera_embed.grad is not None
    assert 0.0 <= token_accuracy(out.logits, out.labels) <= 1.0


def test_causal_mask_keeps_prefix_independent_of_the_answer_but_prefix_lm_does_not():
    for prefix_lm in (False, True):
        torch.manual_seed(0)
        model = VLM(tiny_vlm_config(prefix_lm=prefix_lm)).eval()
        b = _batch(model.tokenizer)
        img = torch.randn(2, 3, 32, 32)
        prompt_len = int((b["labels"][0] == IGNORE_INDEX).sum())
        changed = b["input_ids"].clone()
        changed[0, prompt_len - 1] = 7  # change the last prompt token
        a = model(b["input_ids"], b["attention_mask"], b["labels"], images=img).logits
        c = model(changed, b["attention_mask"], b["labels"], images=img).logits
        first_visual = slice(0, 4)
        same = torch.allclose(a[0, first_visual], c[0, first_visual], atol=1e-6)
        # Causal: visual tokens never see later text; prefix-LM: the prefix is bidirectional.
        assert same is (not prefix_lm)


def test_prefix_lm_mask_structure():
    valid = torch.tensor([[True, True, True, True, False]])
    prefix = torch.tensor([[True, True, False, False, False]])
    allowed = prefix_lm_mask(valid, prefix, torch.float32)[0, 0] == 0
    assert allowed[0, 1]  # prefix sees later prefix
    assert not allowed[0, 2] and not allowed[2, 3]  # nobody sees the future answer
    assert allowed[3, 0] and allowed[3, 2]  # answer sees the past
    assert not allowed[3, 4] and allowed[4, 4]  # padding is invisible; pad rows see themselves
    assert position_ids_from_mask(torch.tensor([[0, 0, 1, 1, 1]])).tolist() == [[0, 0, 0, 1, 2]]


def test_text_only_and_bad_inputs():
    model = VLM(tiny_vlm_config())
    b = _batch(model.tokenizer)
    assert model(b["input_ids"], b["attention_mask"], b["labels"]).num_prefix_tokens == 0
    with pytest.raises(ValueError, match="cameras"):
        model(b["input_ids"], images=torch.randn(2, 2, 3, 32, 32))
    with pytest.raises(ValueError, match="no state encoder"):
        model(b["input_ids"], images=torch.randn(2, 3, 32, 32), state=torch.randn(2, 3))
    with pytest.raises(ValueError, match="batch size mismatch"):
        model(b["input_ids"], images=torch.randn(3, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        model(b["input_ids"], images=torch.randn(2, 1, 32, 32))


def test_added_tokens_grow_the_vocabulary():
    model = VLM(tiny_vlm_config())
    n = len(model.tokenizer)
    ids = model.add_tokens([f"<act_{i}>" for i in range(4)])
    assert ids == list(range(n, n + 4))
    assert model.lm.vocab_size == n + 4
    enc = model.tokenizer("<act_2><act_0>", add_special_tokens=False)["input_ids"]
    assert enc == [n + 2, n]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=9))
def test_prefix_lm_mask_matches_the_definition(cells):
    valid = torch.tensor([[v for v, _ in cells]])
    prefix = torch.tensor([[v and p for v, p in cells]])
    got = prefix_lm_mask(valid, prefix, torch.float32)[0, 0] == 0
    n = len(cells)
    for i in range(n):
        for j in range(n):
            want = i == j or (bool(valid[0, j]) and (j <= i or bool(prefix[0, i] and prefix[0, j])))
            assert bool(got[i, j]) == want, (i, j)


@pytest.mark.parametrize("prefix_lm", [False, True])
def test_dropping_masked_positions_changes_no_real_position(prefix_lm):
    """drop_masked shortens the LM's sequence (pads anywhere, hidden prompt words) without changing what
    the LM computes at a real position: the same hidden states as the full masked sequence."""
    torch.manual_seed(0)
    model = VLM(tiny_vlm_config("siglip", "token_merge", prefix_lm=prefix_lm)).eval()
    b, l, h = 3, 12, model.lm.hidden_size
    x = torch.randn(b, l, h)
    mask = torch.ones(b, l, dtype=torch.long)
    mask[0, 3:7] = 0  # hidden words in the middle
    mask[1, 9:] = 0  # right pads
    mask[2, ::2] = 0  # every other one
    short, short_mask = drop_masked(x, mask)
    assert short.shape == (b, 9, h) and short_mask.shape == (b, 9)  # rows keep 8, 9, 6
    assert short_mask.sum(1).tolist() == mask.sum(1).tolist()

    def hidden(e, m):
        valid = m.bool()
        attn = prefix_lm_mask(valid, valid if prefix_lm else torch.zeros_like(valid), e.dtype)
        out = model.lm(
            inputs_embeds=e,
            attention_mask=attn,
            position_ids=position_ids_from_mask(m),
            output_hidden_states=True,
            use_cache=False,
        )
        return out.hidden_states[-1]  # [B,L,H]

    with torch.no_grad():
        full, part = hidden(x, mask), hidden(short, short_mask)
    for r in range(b):
        real = mask[r].bool()
        n = int(real.sum())
        assert torch.equal(short[r, :n], x[r, real])  # the real positions, in order
        assert torch.allclose(part[r, :n], full[r, real], atol=1e-5)
    with pytest.raises(ValueError, match=r"x \[B,L,H\]"):
        drop_masked(x, mask[:, :5])

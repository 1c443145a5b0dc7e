"""KV-cached generation equals full recomputation (nanoVLM's invariant); constrained decoding; EOS."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vla.backbones.config import PointEncoderConfig, StateEncoderConfig
from vla.backbones.presets import tiny_vlm_config
from vla.models import VLM
from vla.models.generation import constrain
from vla.backbones.text import encode_prompt_answer, pad_batch

PROMPTS = [
    "Question: What colour is the cube? Answer:",
    "In: What action should the robot take to push it?\nOut:",
]


def _model(arch="llama", prefix_lm=False, extras=False):
    torch.manual_seed(0)
    kw = {"prefix_lm": prefix_lm}
    if extras:
        kw |= {
            "state": StateEncoderConfig(dim=5, num_tokens=2),
            "points": PointEncoderConfig(num_groups=4, group_size=4),
            "max_cameras": 2,
        }
    return VLM(tiny_vlm_config("conv", "perceiver", arch, **kw)).eval()


def _prompts(model):
    seqs = [(encode_prompt_answer(model.tokenizer, p)[0], None) for p in PROMPTS]
    return pad_batch(seqs, model.tokenizer.pad_token_id, side="left")


@pytest.mark.parametrize(
    ("arch", "prefix_lm", "extras"),
    [("llama", False, False), ("qwen2", True, False), ("gpt2", False, False), ("llama", True, True)],
)
def test_kv_cache_equals_recomputation(arch, prefix_lm, extras):
    model = _model(arch, prefix_lm, extras)
    b = _prompts(model)
    kw = {"images": torch.randn(2, 3, 32, 32)}
    if extras:
        kw = {
            "images": torch.randn(2, 2, 3, 32, 32),
            "state": torch.randn(2, 5),
            "points": torch.randn(2, 30, 3),
        }
    cached = model.generate(b["input_ids"], b["attention_mask"], max_new_tokens=8, eos_token_id=None, **kw)
    full = model.generate(
        b["input_ids"], b["attention_mask"], max_new_tokens=8, eos_token_id=None, use_cache=False, **kw
    )
    assert cached.tokens.shape == (2, 8)
    assert torch.equal(cached.tokens, full.tokens)
    torch.testing.assert_close(cached.logits, full.logits, atol=1e-4, rtol=1e-4)


def test_left_padding_does_not_change_a_prompts_generation():
    model = _model()
    img = torch.randn(2, 3, 32, 32)
    b = _prompts(model)
    both = model.generate(
        b["input_ids"], b["attention_mask"], images=img, max_new_tokens=5, eos_token_id=None
    )
    one = pad_batch([(encode_prompt_answer(model.tokenizer, PROMPTS[0])[0], None)], 0, side="left")
    alone = model.generate(
        one["input_ids"], one["attention_mask"], images=img[:1], max_new_tokens=5, eos_token_id=None
    )
    assert torch.equal(both.tokens[0], alone.tokens[0])
    torch.testing.assert_close(both.logits[0], alone.logits[0], atol=1e-4, rtol=1e-4)


_MODEL = _model()
_B = _prompts(_MODEL)
_IMG = torch.randn(2, 3, 32, 32)


@settings(max_examples=10, deadline=None)
@given(
    allowed=st.lists(st.integers(0, len(_MODEL.tokenizer) - 1), min_size=1, max_size=6, unique=True),
    per_step=st.booleans(),
)
def test_constrained_decoding_only_emits_allowed_ids(allowed, per_step):
    ids = torch.tensor(allowed)
    constraint = [ids, ids[:1]] if per_step else ids
    out = _MODEL.generate(
        _B["input_ids"],
        _B["attention_mask"],
        images=_IMG,
        max_new_tokens=3,
        allowed=constraint,
        eos_token_id=None,
    )
    assert set(out.tokens.flatten().tolist()) <= set(allowed)
    if per_step:  # step 1 onwards: only the first id
        assert (out.tokens[:, 1:] == allowed[0]).all()
    # The choice is the best allowed id under the unconstrained scores.
    best = out.logits[:, 0, ids].argmax(-1)
    assert torch.equal(out.tokens[:, 0], ids[best])


def test_eos_stops_and_pads():
    model = _model()
    eos = model.tokenizer.eos_token_id
    out = model.generate(
        _B["input_ids"],
        _B["attention_mask"],
        images=_IMG,
        max_new_tokens=6,
        allowed=lambda step, toks: torch.tensor([eos]) if step == 1 else None,
    )
    assert out.tokens.shape == (2, 2) and (out.tokens[:, 1] == eos).all() and out.finished.all()


def test_generation_errors():
    model = _MODEL
    right = pad_batch([(encode_prompt_answer(model.tokenizer, p)[0], None) for p in PROMPTS], 0, side="right")
    with pytest.raises(ValueError, match="left-padded"):
        model.generate(right["input_ids"], right["attention_mask"], images=_IMG, max_new_tokens=2)
    with pytest.raises(ValueError, match="allowed ids must lie"):
        constrain(torch.zeros(1, 10), torch.tensor([10]))
    with pytest.raises(ValueError, match="empty"):
        constrain(torch.zeros(1, 10), torch.tensor([], dtype=torch.long))

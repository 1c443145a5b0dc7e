"""Language models from config (Llama, Qwen2, GPT-2) and the committed tokenizer; added tokens; LoRA."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from vla.backbones import LMConfig, build_language_model, load_text_tokenizer
from vla.backbones.presets import TINY_LM

REPO = Path(__file__).resolve().parents[3]


def test_builtin_tokenizer_is_a_fast_tokenizer_with_special_tokens():
    tok = load_text_tokenizer("builtin:tiny")
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert 1000 <= len(tok) <= 8000
    assert tok.pad_token == "<pad>" and tok.eos_token == "</s>" and tok.bos_token == "<s>"
    prompt = "In: What action should the robot take to pick up the red block?\nOut:"
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    assert len(ids) < 25  # the corpus taught it the prompt template
    assert tok.decode(ids) == prompt
    assert tok.decode(tok("zebra 42 ünïcode")["input_ids"], skip_special_tokens=True) == "zebra 42 ünïcode"
    again = PreTrainedTokenizerFast.from_pretrained(str(REPO / "vla/assets/text_tokenizer"))
    assert again(prompt)["input_ids"] == tok(prompt)["input_ids"]


def test_tokenizer_script_is_deterministic(tmp_path):
    cmd = [
        sys.executable,
        str(REPO / "scripts/train_text_tokenizer.py"),
        "--lines",
        "2000",
        "--vocab-size",
        "600",
    ]
    for name in ("a", "b"):
        subprocess.run([*cmd, "--out", str(tmp_path / name)], check=True, capture_output=True)
    a = (tmp_path / "a" / "tokenizer.json").read_text()
    assert a == (tmp_path / "b" / "tokenizer.json").read_text()
    assert 300 < len(PreTrainedTokenizerFast.from_pretrained(str(tmp_path / "a"))) <= 600


def test_tokenizer_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown builtin"):
        load_text_tokenizer("builtin:huge")
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        load_text_tokenizer(str(tmp_path))


@pytest.mark.parametrize("arch", sorted(TINY_LM))
def test_language_models_from_config(arch):
    tok = load_text_tokenizer("builtin:tiny")
    lm = build_language_model(LMConfig(arch=arch, hf=dict(TINY_LM[arch])), tok)
    assert lm.vocab_size == len(tok) and lm.hidden_size == 64
    ids = torch.tensor([[1, 5, 9, 2]])
    logits = lm(inputs_embeds=lm.embed(ids)).logits
    assert logits.shape == (1, 4, len(tok))
    lm.resize_vocab(len(tok) + 3)
    assert lm.model.get_output_embeddings().weight.shape[0] == len(tok) + 3
    assert lm.resolved_config().hf["vocab_size"] == len(tok) + 3


def test_unknown_arch_and_missing_pretrained(tmp_path):
    tok = load_text_tokenizer("builtin:tiny")
    with pytest.raises(ValueError, match="not a transformers model type"):
        build_language_model(LMConfig(arch="no-such-arch"), tok)
    with pytest.raises(FileNotFoundError, match="missing config.json"):
        build_language_model(LMConfig(pretrained=str(tmp_path)), tok)


def test_load_lm_from_local_pretrained_directory(tmp_path):
    tok = load_text_tokenizer("builtin:tiny")
    lm = build_language_model(LMConfig(arch="qwen2", hf=dict(TINY_LM["qwen2"])), tok).eval()
    lm.model.save_pretrained(tmp_path / "qwen")
    tok.save_pretrained(tmp_path / "qwen")
    tok2 = load_text_tokenizer("", pretrained=str(tmp_path / "qwen"))
    lm2 = build_language_model(LMConfig(pretrained=str(tmp_path / "qwen")), tok2).eval()
    assert lm2.arch == "qwen2"
    x = torch.tensor([[3, 4, 5]])
    torch.testing.assert_close(lm2(input_ids=x).logits, lm(input_ids=x).logits)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
@pytest.mark.parametrize("prefix_lm", [False, True])
def test_final_hidden_states_of_kept_positions_match_the_whole_model(arch, prefix_lm):
    """LanguageModel.final_hidden_states runs the last layer for the kept positions only (Llama, Qwen2)
    or the whole model (GPT-2): same values and gradients as base_model(...).last_hidden_state[:, -Q:],
    with right padding inside the rows and with a prefix-LM mask."""
    from vla.models.masks import position_ids_from_mask, prefix_lm_mask

    tok = load_text_tokenizer("builtin:tiny")
    hf = dict(TINY_LM[arch])
    if arch != "gpt2":
        hf.update(num_hidden_layers=3, num_key_value_heads=2)
    torch.manual_seed(0)
    lm = build_language_model(LMConfig(arch=arch, tokenizer="builtin:tiny", hf=hf), tok).eval()  # no dropout
    b, n, q = 3, 20, 4
    x = torch.randn(b, n, lm.hidden_size, requires_grad=True)
    valid = torch.ones(b, n, dtype=torch.bool)
    valid[0, 10:16] = False  # pads between the prompt and the kept positions
    valid[1, 12:16] = False
    prefix = valid.clone() if prefix_lm else torch.zeros_like(valid)
    prefix[:, n - q :] = False
    mask = prefix_lm_mask(valid, prefix, x.dtype)  # [B,1,L,L]
    pos = position_ids_from_mask(valid.long())
    base = lm.model.base_model
    pruned = lm._prunable(base, list(getattr(base, "layers", [])))
    assert pruned == (arch != "gpt2")
    want = base(inputs_embeds=x, attention_mask=mask, position_ids=pos, use_cache=False).last_hidden_state[:, -q:]
    got = lm.final_hidden_states(x, mask, pos, keep=q)
    assert got.shape == (b, q, lm.hidden_size)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    params = [x, *lm.parameters()]
    g_want = torch.autograd.grad(want.square().sum(), params, allow_unused=True)
    g_got = torch.autograd.grad(got.square().sum(), params, allow_unused=True)
    for p, a, c in zip(params, g_want, g_got, strict=True):
        if a is None or c is None:
            assert a is None or not a.any(), "a gradient the pruned path lost"
            continue
        torch.testing.assert_close(c, a, atol=1e-5, rtol=1e-4)

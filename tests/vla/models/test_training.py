"""Training behaviour: a tiny VLM overfits (image, question, answer) pairs; LoRA trains only adapters;
frozen components stay put; the hydra presets compose into a buildable config."""

import pytest
import torch

from vla.backbones import compose_model_config
from vla.backbones.presets import tiny_vlm_config
from vla.models import VLM, token_accuracy
from vla.backbones.text import encode_prompt_answer, pad_batch

COLOURS = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
}


def _vqa_batch(model):
    """Four (image, question, answer) pairs: a coloured square on grey; answers name the colour/side."""
    images, seqs = [], []
    for i, (name, rgb) in enumerate(COLOURS.items()):
        img = torch.full((3, 32, 32), 0.5)
        left = i % 2 == 0
        cols = slice(0, 16) if left else slice(16, 32)
        img[:, 8:24, cols] = torch.tensor(rgb).view(3, 1, 1)
        images.append(model.vision.transform(img.unsqueeze(0))[0])
        seqs.append(
            encode_prompt_answer(
                model.tokenizer,
                "Question: What colour is the block and where is it? Answer:",
                f" {name}, on the {'left' if left else 'right'} side",
            )
        )
    b = pad_batch(seqs, model.tokenizer.pad_token_id)
    return torch.stack(images), b


def test_tiny_vlm_overfits_a_handful_of_vqa_pairs():
    torch.manual_seed(0)
    model = VLM(compose_model_config("tiny")).train()
    images, b = _vqa_batch(model)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        out = model(b["input_ids"], b["attention_mask"], b["labels"], images=images)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model(b["input_ids"], b["attention_mask"], b["labels"], images=images)
    acc = token_accuracy(out.logits, out.labels)
    assert acc >= 0.95, f"token accuracy {acc:.3f} after 150 steps (loss {float(out.loss):.3f})"
    # And generation reproduces the answer from the image alone.
    prompt = encode_prompt_answer(
        model.tokenizer, "Question: What colour is the block and where is it? Answer:"
    )[0]
    g = pad_batch([(prompt, None)] * 4, 0, side="left")
    gen = model.generate(g["input_ids"], g["attention_mask"], images=images, max_new_tokens=12)
    text = model.tokenizer.decode(gen.tokens[2], skip_special_tokens=True)
    assert text.strip() == "blue, on the left side"


@pytest.mark.parametrize(
    ("parts", "components"),
    [
        (("siglip", "perceiver", "qwen2"), ["lm"]),
        (("siglip", "perceiver", "qwen2"), ["lm", "vision", "connector"]),
        (("conv", "qformer", "gpt2"), ["lm", "vision", "connector"]),  # GPT-2 Conv1D, Conv2d layers
    ],
)
def test_lora_trains_only_adapters(parts, components):
    torch.manual_seed(0)
    model = VLM(tiny_vlm_config(*parts))
    for c in components:
        assert model.apply_lora(c, r=4) > 0
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    for name in trainable:
        assert "lora_" in name or not any(name.startswith(c + ".") for c in components), name
    images, b = _vqa_batch(model)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):
        loss = model(b["input_ids"], b["attention_mask"], b["labels"], images=images).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n, p in model.named_parameters():
        moved = not torch.equal(p, before[n])
        in_comp = any(n.startswith(c + ".") for c in components)
        if in_comp and "lora_" not in n:
            assert not moved, f"base weight {n} changed under LoRA"
    lora_moved = [n for n, p in model.named_parameters() if "lora_" in n and not torch.equal(p, before[n])]
    assert lora_moved and {n.split(".")[0] for n in lora_moved} == set(components)


def test_freeze_and_unfreeze_components():
    model = VLM(tiny_vlm_config("clip", "qformer"))
    model.set_frozen(["vision", "lm"])
    counts = model.trainable_parameters_by_component()
    assert counts["vision"] == 0 and counts["lm"] == 0 and counts["connector"] > 0
    images, b = _vqa_batch(model)
    model(b["input_ids"], b["attention_mask"], b["labels"], images=images).loss.backward()
    assert all(p.grad is None for p in model.vision.parameters())
    assert all(p.grad is None for p in model.lm.parameters())
    model.unfreeze(["vision"])
    assert model.trainable_parameters_by_component()["vision"] > 0
    with pytest.raises(ValueError, match="unknown component 'state'"):
        model.freeze(["state"])


def test_presets_compose_with_overrides():
    cfg = compose_model_config(
        "tiny",
        [
            "vision.name=dinov2",
            "connector.name=cross_attn",
            "connector.num_queries=4",
            "vision.hf.hidden_size=32",
            "+vision.hf.num_hidden_layers=1",
            "+vision.hf.num_attention_heads=2",
            "prefix_lm=true",
        ],
    )
    model = VLM(cfg)
    assert model.vision.name == "dinov2" and model.connector.num_tokens(16) == 4 and model.cfg.prefix_lm
    big = compose_model_config("siglip_qwen2_0p5b")
    assert big.vision.hf["hidden_size"] == 1152 and big.lm.hf["hidden_size"] == 896
    assert compose_model_config("prismatic_qwen2_0p5b").vision.name == "fused"
    with pytest.raises(ValueError, match="unknown model preset 'no_such_preset'.*tiny"):
        compose_model_config("no_such_preset")

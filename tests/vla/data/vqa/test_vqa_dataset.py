"""VQADataset + VQACollator: multi-turn text with loss only on answers, task tags, generation prompts, and
a real tiny VLM forward/backward on the collated batch."""

import json

import pytest
import torch

from vla.data.vqa import VQACollator, VQADataset, VQAPromptConfig, VQASourceConfig, encode_turns, read_vqa
from vla.backbones.text import IGNORE_INDEX


def test_labels_cover_exactly_the_answers(tiny_vlm, llava_file):
    model = tiny_vlm
    path, _ = llava_file
    samples, _ = read_vqa(VQASourceConfig(format="llava", path=str(path)))
    tok = model.tokenizer
    ids, labels = encode_turns(tok, samples[1].turns, VQAPromptConfig(), task="vqa")
    answer_ids = [i for i, lab in zip(ids, labels) if lab != IGNORE_INDEX]
    text = tok.decode(answer_ids, skip_special_tokens=True)
    assert "A green square fills the picture." in text and text.rstrip().endswith("green")
    assert labels.count(tok.eos_token_id) == 2  # one EOS per answer
    prompt_text = tok.decode([i for i, lab in zip(ids, labels) if lab == IGNORE_INDEX])
    assert (
        "[vqa] Question: Describe the image. Answer:" in prompt_text and "What colour is it?" in prompt_text
    )
    gen_ids, _ = encode_turns(tok, samples[1].turns, VQAPromptConfig(), "vqa", answer_last=False)
    assert ids[: len(gen_ids)] == gen_ids and tok.decode(gen_ids).rstrip().endswith("Answer:")


def test_collated_batch_trains_a_tiny_vlm(tiny_vlm, llava_file):
    model = tiny_vlm
    path, _ = llava_file
    samples, _ = read_vqa(VQASourceConfig(format="llava", path=str(path)))
    ds = VQADataset(samples, task="vqa")
    collate = VQACollator(model.tokenizer, model.vision.transform)
    items = [ds[i] for i in range(len(ds))]
    batch = collate(items)
    b, l = batch["input_ids"].shape
    assert b == 3 and batch["labels"].shape == (b, l) and batch["images"].shape == (3, 1, 3, 32, 32)
    out = model(**batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    gen = collate.generation_inputs(items)
    assert bool(gen["attention_mask"][:, -1].all())  # left-padded
    res = model.generate(gen["input_ids"], gen["attention_mask"], images=gen["images"], max_new_tokens=3)
    assert res.tokens.shape[0] == 3


def test_collator_errors(tiny_vlm, llava_file):
    model = tiny_vlm
    path, _ = llava_file
    samples, _ = read_vqa(VQASourceConfig(format="llava", path=str(path)))
    collate = VQACollator(model.tokenizer, model.vision.transform, max_length=8)
    with pytest.raises(ValueError, match="sample 's0' has .* tokens > max_length 8"):
        collate([VQADataset(samples)[0]])
    lazy = VQADataset(samples, load_images=False)
    with pytest.raises(ValueError, match="expected uint8 images"):
        VQACollator(model.tokenizer, model.vision.transform)([lazy[0]])
    with pytest.raises(ValueError, match="no samples"):
        VQADataset([])


def test_two_image_samples_collate_to_two_slots(tiny_vlm, llava_file):
    path, recs = llava_file
    two = {
        "id": "pair",
        "image": ["images/red.png", "images/blue.png"],
        "conversations": [
            {"from": "human", "value": "<image>\n<image>\nWhich image is red?"},
            {"from": "gpt", "value": "the first"},
        ],
    }
    path.write_text(json.dumps([two, {**two, "id": "pair2"}]))
    samples, _ = read_vqa(VQASourceConfig(format="llava", path=str(path)))
    batch = VQACollator(tiny_vlm.tokenizer, tiny_vlm.vision.transform)(
        [VQADataset(samples)[i] for i in (0, 1)]
    )
    assert batch["images"].shape == (2, 2, 3, 32, 32)
    assert batch["images"][0, 0, 0].mean() > batch["images"][0, 1, 0].mean()  # red channel: red, then blue
    with pytest.raises(ValueError, match="same image count"):
        VQACollator(tiny_vlm.tokenizer, tiny_vlm.vision.transform)(
            [VQADataset(samples)[0], {**VQADataset(samples)[1], "images": []}]
        )

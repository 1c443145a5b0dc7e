"""The one checkpoint format: save -> load gives identical outputs for every encoder and connector,
added tokens and LoRA adapters survive, extra files ride along, and bad directories give clear errors."""

import json

import pytest
import torch

from vla.backbones.presets import CONNECTOR_NAMES, VISION_NAMES, tiny_vlm_config
from vla.models import VLM, load_checkpoint, read_checkpoint_config, save_checkpoint
from vla.backbones.text import encode_prompt_answer, pad_batch
from vla.core.io import atomic_write_json


def _inputs(model):
    seqs = [encode_prompt_answer(model.tokenizer, "Question: What colour is the cube? Answer:", " red")]
    b = pad_batch(seqs * 2, model.tokenizer.pad_token_id)
    return b["input_ids"], b["attention_mask"], torch.randn(2, 3, 32, 32)


def _roundtrip(model, tmp_path):
    model.eval()
    ids, mask, img = _inputs(model)
    before = model(ids, mask, images=img).logits
    model.save_pretrained(tmp_path / "ckpt")
    loaded = VLM.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(loaded(ids, mask, images=img).logits, before, rtol=0, atol=0)
    return loaded


@pytest.mark.parametrize("connector", CONNECTOR_NAMES)
@pytest.mark.parametrize("vision", VISION_NAMES)
def test_save_load_identical(tmp_path, vision, connector):
    torch.manual_seed(0)
    _roundtrip(VLM(tiny_vlm_config(vision, connector)), tmp_path)


def test_layout_resolved_config_and_extras(tmp_path):
    torch.manual_seed(0)
    model = VLM(tiny_vlm_config("siglip", "qformer", "gpt2"))
    ids = model.add_tokens(["<act_0>", "<act_1>"])
    stats = {"mean": [0.0] * 7}
    save_checkpoint(
        model,
        tmp_path / "ckpt",
        extra_config={"vla": {"action_dim": 7}},
        extra_files={"normalizer.json": lambda d: atomic_write_json(d / "normalizer.json", stats)},
    )
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["config.json", "model.safetensors", "normalizer.json", "tokenizer"]
    cfg = read_checkpoint_config(tmp_path / "ckpt", model_type="vlm")
    assert cfg["vla"] == {"action_dim": 7} and cfg["format_version"] == 1
    assert cfg["model"]["lm"]["hf"]["vocab_size"] == len(model.tokenizer)
    assert cfg["model"]["vision"]["pretrained"] is None and cfg["model"]["vision"]["hf"]["hidden_size"] == 32
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.tokenizer.convert_tokens_to_ids(["<act_0>", "<act_1>"]) == ids
    assert json.loads((tmp_path / "ckpt" / "normalizer.json").read_text()) == stats


def test_lora_and_freeze_survive_a_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = VLM(tiny_vlm_config("vit", "mlp2x_gelu"))
    model.apply_lora("lm", r=4, alpha=8)
    model.apply_lora("vision", r=2)
    model.set_frozen(["connector"])
    with torch.no_grad():  # make the adapters non-trivial so the test can see them load
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_()
    loaded = _roundtrip(model, tmp_path)
    assert loaded.cfg.lora.keys() == {"lm", "vision"}
    assert loaded.trainable_parameters_by_component()["connector"] == 0


def test_bad_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(tmp_path / "none")
    model = VLM(tiny_vlm_config())
    model.save_pretrained(tmp_path / "ok")
    (tmp_path / "ok" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="missing model.safetensors"):
        load_checkpoint(tmp_path / "ok")
    model.save_pretrained(tmp_path / "v")
    cfg = json.loads((tmp_path / "v" / "config.json").read_text())
    (tmp_path / "v" / "config.json").write_text(json.dumps({**cfg, "format_version": 99}))
    with pytest.raises(ValueError, match="format_version 99"):
        load_checkpoint(tmp_path / "v")
    model.save_pretrained(tmp_path / "w")
    cfg["model"]["lm"]["hf"]["num_hidden_layers"] = 3
    (tmp_path / "w" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="weights do not fit"):
        load_checkpoint(tmp_path / "w")
    cfg["model"]["vision"]["colour"] = 1
    (tmp_path / "w" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unknown keys \\['colour'\\]"):
        load_checkpoint(tmp_path / "w")
    with pytest.raises(ValueError, match="may not replace"):
        save_checkpoint(model, tmp_path / "x", extra_files={"config.json": lambda d: None})


def test_failed_save_leaves_the_old_checkpoint(tmp_path):
    model = VLM(tiny_vlm_config())
    model.save_pretrained(tmp_path / "ckpt")

    def boom(_d):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(model, tmp_path / "ckpt", extra_files={"normalizer.json": boom})
    assert load_checkpoint(tmp_path / "ckpt") is not None

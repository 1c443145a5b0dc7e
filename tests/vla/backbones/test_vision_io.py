"""Image transforms (JSON round trip, uint8 input) and loading encoders from local pretrained directories."""

import json

import numpy as np
import pytest
import torch

from vla.backbones import ImageTransform, VisionConfig, build_vision_encoder
from vla.backbones.presets import tiny_vision_config
from vla.backbones.transforms import SIGLIP_MEAN, SIGLIP_STD


def test_transform_json_round_trip_and_uint8_input():
    t = ImageTransform(size=16, mean=SIGLIP_MEAN, std=SIGLIP_STD, resample="bilinear")
    t2 = ImageTransform.from_dict(json.loads(json.dumps(t.to_dict())))
    assert t2 == t
    img = np.full((24, 24, 3), 255, dtype=np.uint8)  # [H,W,3] white
    out = t2(img)
    assert out.shape == (1, 3, 16, 16) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.ones_like(out))  # (1 - 0.5) / 0.5
    batch = t2(np.zeros((2, 16, 16, 3), dtype=np.uint8))
    torch.testing.assert_close(batch, -torch.ones(2, 3, 16, 16))
    assert img.max() == 255  # input untouched


def test_transform_rejects_bad_input():
    t = ImageTransform(size=8)
    with pytest.raises(ValueError, match=r"\[H,W,3\]"):
        t(np.zeros((8, 8, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        t(torch.zeros(1, 8, 8, 3))
    with pytest.raises(ValueError, match="missing keys"):
        ImageTransform.from_dict({"size": 8})


@pytest.mark.parametrize("name", ["siglip", "clip", "dinov2", "vit"])
def test_encoder_transform_matches_family(name):
    enc = build_vision_encoder(tiny_vision_config(name))
    assert enc.transform.size == 32
    expected = {"siglip": 0.5, "vit": 0.5, "clip": 0.48145466, "dinov2": 0.485}[name]
    assert enc.transform.mean[0] == pytest.approx(expected)


@pytest.mark.parametrize("name", ["siglip", "dinov2"])
def test_load_from_local_pretrained_directory(tmp_path, name):
    torch.manual_seed(0)
    enc = build_vision_encoder(tiny_vision_config(name)).eval()
    enc.model.save_pretrained(tmp_path / "hf")
    (tmp_path / "hf" / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.1, 0.2, 0.3], "image_std": [0.9, 0.8, 0.7]})
    )
    loaded = build_vision_encoder(
        VisionConfig(name=name, image_size=32, pretrained=str(tmp_path / "hf"))
    ).eval()
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x), enc(x))
    assert loaded.transform.mean == (0.1, 0.2, 0.3)
    # A different image size interpolates the pretrained position embeddings.
    bigger = build_vision_encoder(VisionConfig(name=name, image_size=48, pretrained=str(tmp_path / "hf")))
    assert bigger(torch.randn(1, 3, 48, 48)).shape == (1, 36, enc.embed_dim)
    # The resolved config rebuilds the architecture without the directory.
    rebuilt = build_vision_encoder(loaded.resolved_config())
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in loaded.parameters())


def test_pretrained_directory_errors_name_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        build_vision_encoder(VisionConfig(name="siglip", pretrained=str(tmp_path / "nope")))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="missing model.safetensors"):
        build_vision_encoder(VisionConfig(name="clip", pretrained=str(tmp_path)))
    with pytest.raises(ValueError, match="no pretrained weights"):
        build_vision_encoder(VisionConfig(name="conv", pretrained=str(tmp_path)))


def test_transform_batch_matches_the_formula_and_leaves_its_input_alone():
    """The in-place normalisation gives (x / 255 - mean) / std exactly, contiguous NCHW, and never
    writes into the caller's array or tensor."""
    from vla.backbones.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform

    t = ImageTransform(8, IMAGENET_MEAN, IMAGENET_STD)
    u8 = torch.randint(0, 256, (3, 8, 8, 3), dtype=torch.uint8)
    keep = u8.clone()
    want = (u8.permute(0, 3, 1, 2).float() / 255.0 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        IMAGENET_STD
    ).view(1, 3, 1, 1)
    got = t(u8)
    assert torch.equal(got, want) and got.is_contiguous() and torch.equal(u8, keep)
    floats = u8.permute(0, 3, 1, 2).float() / 255.0
    before = floats.clone()
    assert torch.equal(t(floats), want) and torch.equal(floats, before)

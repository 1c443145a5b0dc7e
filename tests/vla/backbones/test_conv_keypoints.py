"""The conv encoder's spatial-softmax keypoint tokens: count, positions that follow the image, config."""

import pytest
import torch

from vla.backbones.config import VisionConfig
from vla.backbones.vision import build_vision_encoder, spatial_softmax


def _enc(**hf):
    torch.manual_seed(0)
    return build_vision_encoder(VisionConfig(name="conv", image_size=32, hf={"hidden_size": 32, **hf}))


def test_keypoint_tokens_are_appended_and_rebuild_from_config():
    enc = _enc(patch_size=8, keypoints=6)
    out = enc(torch.randn(3, 3, 32, 32))
    assert out.shape == (3, 4 * 4 + 6, 32) and enc.num_patches() == 22
    again = build_vision_encoder(enc.resolved_config())
    again.load_state_dict(enc.state_dict())  # same architecture, same parameter names
    assert again.num_patches() == 22
    plain = _enc(patch_size=8)
    assert set(plain.state_dict()) < set(enc.state_dict())  # keypoints only add parameters


def test_spatial_softmax_finds_peaks_and_pools_their_features():
    feats = torch.zeros(1, 2, 5, 9)  # [B,C,h,w]
    feats[0, 0, 1, 2], feats[0, 1, 4, 8] = 7.0, -3.0
    logits = torch.full((1, 2, 5, 9), -50.0)  # [B,K,h,w]: one sharp peak per keypoint
    logits[0, 0, 1, 2] = logits[0, 1, 4, 8] = 50.0
    xy, pooled = spatial_softmax(feats, logits)
    assert torch.allclose(xy[0, 0], torch.tensor([-1 + 2 * 2 / 8, -1 + 2 * 1 / 4]), atol=1e-5)
    assert torch.allclose(xy[0, 1], torch.tensor([1.0, 1.0]), atol=1e-5)
    assert torch.allclose(pooled[0], torch.tensor([[7.0, 0.0], [0.0, -3.0]]), atol=1e-4)
    flat = spatial_softmax(feats, torch.zeros(1, 1, 5, 9))[0]  # uniform map: the image centre
    assert torch.allclose(flat, torch.zeros(1, 1, 2), atol=1e-6)


def test_keypoint_tokens_move_with_the_image():
    enc = _enc(patch_size=8, keypoints=2).eval()
    img = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        a, b = enc(img), enc(torch.roll(img, shifts=8, dims=3))
    assert a.shape == b.shape == (1, 18, 32) and not torch.allclose(a[:, 16:], b[:, 16:], atol=1e-4)


def test_bad_keypoint_settings():
    with pytest.raises(ValueError, match="keypoint_stride"):
        _enc(patch_size=8, keypoints=4, keypoint_stride=16)
    with pytest.raises(ValueError, match="keypoints"):
        _enc(patch_size=8, keypoints=-1)

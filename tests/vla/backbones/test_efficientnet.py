"""EfficientNet-Lite0 (vla/backbones/efficientnet.py): the packaged ImageNet weights classify a real photo
(and a random network does not), the weights the encoder keeps are the classifier's, the transform is the
one the weights expect, token shapes per stride and size, clear errors for bad configs, images and weight
files, BatchNorm statistics that never move, and LoRA on the pointwise convolutions through a checkpoint."""

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from vla.backbones import build_vision_encoder
from vla.backbones.adapters import ComponentControls
from vla.backbones.config import VisionConfig
from vla.backbones.efficientnet import (
    LITE_MEAN,
    LITE_STD,
    DepthwiseConv2d,
    build_lite0,
    efficientnet_lite0_classifier,
    lite0_transform,
)
from vla.backbones.presets import tiny_vlm_config
from vla.backbones.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform
from vla.models import VLM

PACKAGED = "package:efficientnet_lite0"
MILITARY_UNIFORM = 652  # ImageNet-1k class index
CHANNELS = {8: 40, 16: 112, 32: 320}


def cfg(stride=16, size=64, pretrained=None, **hf):
    return VisionConfig(
        name="efficientnet_lite0", image_size=size, pretrained=pretrained, hf={"stride": stride, **hf}
    )


@pytest.fixture(scope="module")
def photo():
    """matplotlib's Grace Hopper photo (600 x 512), centre-cropped square, uint8 [H,W,3]."""
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    x = np.array(Image.open(path).convert("RGB"))
    h, w = x.shape[:2]
    s = min(h, w)
    return x[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]


@pytest.fixture(scope="module")
def classifier():
    return efficientnet_lite0_classifier(PACKAGED)


def _top5(net, pixels):
    with torch.no_grad():
        probs = net(pixels).softmax(-1)[0]
    top = probs.topk(5)
    return top.indices.tolist(), top.values.tolist()


def test_packaged_weights_classify_a_photo_and_random_weights_do_not(photo, classifier):
    pixels = lite0_transform(224)(photo)
    idx, probs = _top5(classifier, pixels)
    print(f"top-5 {idx}, top-1 {idx[0]} p={probs[0]:.3f}")  # measured: 652 p=0.412, then 667, 834, 906, 887
    assert MILITARY_UNIFORM in idx and idx[0] == MILITARY_UNIFORM
    torch.manual_seed(0)
    random_idx, _ = _top5(efficientnet_lite0_classifier(None), pixels)
    assert MILITARY_UNIFORM not in random_idx


def test_the_transform_is_the_one_the_weights_were_trained_with(photo, classifier):
    """(x - 127) / 128: the conv stem's output variance matches the first BatchNorm's stored variance
    (log ratio ~0.1); ImageNet mean/std inputs are ~2.2x larger, their variance ~5x too big."""
    enc = build_vision_encoder(cfg(16, 224, PACKAGED))
    assert enc.transform == ImageTransform(224, LITE_MEAN, LITE_STD)
    bn = classifier._bn0

    def log_var_ratio(transform):
        with torch.no_grad():
            out = classifier._conv_stem(transform(photo))
        return (out.var((0, 2, 3)) / bn.running_var).log().median().item()

    assert abs(log_var_ratio(enc.transform)) < 0.5
    assert log_var_ratio(ImageTransform(224, IMAGENET_MEAN, IMAGENET_STD)) > 1.2


def test_the_encoder_keeps_the_classifier_weights_up_to_its_stride(photo, classifier):
    enc = build_vision_encoder(cfg(32, 224, PACKAGED)).eval()
    pixels = enc.transform(photo)
    feats = {}
    hook = classifier._blocks[-1].register_forward_hook(lambda m, i, o: feats.setdefault("last", o))
    with torch.no_grad():
        classifier(pixels)
        tokens = enc(pixels)
    hook.remove()
    expected = feats["last"].flatten(2).transpose(1, 2)  # [1,320,7,7] -> [1,49,320]
    torch.testing.assert_close(tokens, expected, rtol=0, atol=0)
    assert len(enc.blocks) == 16 and not hasattr(enc, "_conv_head")
    assert [len(build_vision_encoder(cfg(s)).blocks) for s in (8, 16)] == [5, 11]


@pytest.mark.parametrize("stride", [8, 16, 32])
def test_token_shapes_per_stride_and_size(stride):
    torch.manual_seed(0)
    enc = build_vision_encoder(cfg(stride, 64))
    assert enc.patch_size == stride and enc.embed_dim == CHANNELS[stride]
    for h, w in ((64, 64), (224, 224), (64, 96)):
        out = enc(torch.randn(1, 3, h, w))
        assert out.shape == (1, (h // stride) * (w // stride), CHANNELS[stride])
        assert enc.grid((h, w)) == (h // stride, w // stride)
        assert torch.isfinite(out).all() and 0.1 < out.std() < 100  # random init keeps a usable scale
    proj = build_vision_encoder(cfg(stride, 64, hidden_size=24))
    assert proj.embed_dim == 24 and proj(torch.randn(2, 3, 64, 64)).shape == (2, (64 // stride) ** 2, 24)


def test_tokens_are_the_feature_map_row_major():
    enc = build_vision_encoder(cfg(16, 64)).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        fmap, tokens = enc.features(x), enc(x)  # [1,112,4,6], [1,24,112]
    torch.testing.assert_close(tokens[0, 1 * 6 + 4], fmap[0, :, 1, 4])


def test_bad_configs_and_images_are_clear_errors():
    with pytest.raises(ValueError, match=r"hf.stride must be one of \(8, 16, 32\), got 4"):
        build_vision_encoder(cfg(4))
    with pytest.raises(ValueError, match=r"unknown hf keys \['patch_size'\]"):
        build_vision_encoder(cfg(16, patch_size=16))
    with pytest.raises(ValueError, match="feature_layer is not used"):
        build_vision_encoder(VisionConfig(name="efficientnet_lite0", feature_layer=-2))
    enc = build_vision_encoder(cfg(16, 64))
    with pytest.raises(ValueError, match="cannot take images of 70x64 with patch size 16.*multiples of 16"):
        enc(torch.randn(1, 3, 70, 64))
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        enc(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="dtype"):
        enc(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


def test_bad_weight_files_are_errors_naming_the_file(tmp_path):
    sd = build_lite0().state_dict()
    renamed = tmp_path / "renamed.pth"
    torch.save({k.replace("_blocks", "blocks"): v for k, v in sd.items()}, renamed)
    with pytest.raises(
        ValueError, match=rf"{renamed} is not an EfficientNet-Lite0 state dict: missing keys "
    ):
        build_vision_encoder(cfg(pretrained=str(renamed)))
    headless = tmp_path / "headless.pth"
    torch.save({k: v for k, v in sd.items() if not k.startswith("_fc")}, headless)
    with pytest.raises(ValueError, match=r"missing keys \['_fc.bias', '_fc.weight'\], unexpected keys \[\]"):
        build_vision_encoder(cfg(pretrained=str(headless)))
    wide = tmp_path / "wide.pth"
    torch.save({**sd, "_fc.weight": torch.zeros(10, 1280), "_fc.bias": torch.zeros(10)}, wide)
    with pytest.raises(
        ValueError, match=r"wide.pth: shapes differ .*_fc.weight: \(10, 1280\) vs \(1000, 1280\)"
    ):
        build_vision_encoder(cfg(pretrained=str(wide)))
    pickled = tmp_path / "object.pth"
    torch.save({"net": torch.nn.Linear(2, 2)}, pickled)  # a pickled module: refused by weights_only
    with pytest.raises(ValueError, match=rf"{pickled} is not a readable state dict"):
        build_vision_encoder(cfg(pretrained=str(pickled)))
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'none.pth'} not found"):
        build_vision_encoder(cfg(pretrained=str(tmp_path / "none.pth")))
    with pytest.raises(FileNotFoundError, match="is a directory; expected a state dict file"):
        build_vision_encoder(cfg(pretrained=str(tmp_path)))


def test_a_local_state_dict_loads_like_the_package(tmp_path, classifier):
    sd = {k: v.contiguous() for k, v in classifier.state_dict().items()}
    save_file(sd, str(tmp_path / "lite0.safetensors"))
    torch.save(sd, tmp_path / "lite0.pth")
    x = torch.randn(1, 3, 64, 64)
    ref = build_vision_encoder(cfg(16, 64, PACKAGED)).eval()(x)
    for name in ("lite0.safetensors", "lite0.pth"):
        enc = build_vision_encoder(cfg(16, 64, str(tmp_path / name))).eval()
        torch.testing.assert_close(enc(x), ref, rtol=0, atol=0)
    rebuilt = build_vision_encoder(enc.resolved_config())
    assert (
        enc.resolved_config() == cfg(16, 64, hidden_size=0)
        and rebuilt.resolved_config() == enc.resolved_config()
    )
    rebuilt.load_state_dict(enc.state_dict())
    torch.testing.assert_close(rebuilt.eval()(x), ref, rtol=0, atol=0)


def test_batchnorm_statistics_stay_fixed_in_training_mode():
    enc = build_vision_encoder(cfg(16, 64, PACKAGED))
    x = torch.randn(2, 3, 64, 64)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    enc.train()
    assert enc.training and enc.blocks[0].training
    assert not any(m.training for m in enc.modules() if isinstance(m, torch.nn.BatchNorm2d))
    out_train = enc(x)
    out_train.sum().backward()  # the BatchNorm scale and shift still learn
    assert enc.blocks[0]._bn1.weight.grad is not None
    torch.testing.assert_close(enc.eval()(x), out_train, rtol=0, atol=0)
    assert all(torch.equal(v, before[k]) for k, v in enc.state_dict().items())


class _Holder(torch.nn.Module, ComponentControls):
    def __init__(self, enc):
        super().__init__()
        self.enc = enc

    def components(self):
        return {"vision": self.enc}


def test_lora_wraps_the_stem_and_pointwise_convolutions_not_the_depthwise_ones():
    torch.manual_seed(0)
    holder = _Holder(build_vision_encoder(cfg(16, 64, hidden_size=16)))
    enc = holder.enc
    x = torch.randn(2, 3, 64, 96)
    ref = enc.eval()(x)
    count = holder.inject_lora("vision", r=2, alpha=4)
    adapted = {n.split(".lora_A")[0] for n, _ in enc.named_parameters() if ".lora_A." in n}
    assert "stem.0" in adapted and "proj" in adapted and "blocks.1._expand_conv" in adapted
    assert "blocks.1._project_conv" in adapted and not any("depthwise" in n for n in adapted)
    assert all(isinstance(b._depthwise_conv, DepthwiseConv2d) for b in enc.blocks)
    assert count == sum(p.numel() for p in enc.parameters() if p.requires_grad) > 0
    torch.testing.assert_close(enc(x), ref)  # lora_B starts at zero
    with torch.no_grad():
        for n, p in enc.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.1)
    out = enc.train()(x)  # the stem's stride-2 adapter pads like the stem: shapes agree
    assert out.shape == ref.shape and not torch.allclose(out, ref)
    out.square().mean().backward()
    grads = {n for n, p in enc.named_parameters() if p.grad is not None}
    assert grads and all("lora_" in n for n in grads)


def test_a_vlm_with_lora_and_frozen_efficientnet_round_trips(tmp_path):
    torch.manual_seed(0)
    model = VLM(tiny_vlm_config("efficientnet_lite0"))
    model.apply_lora("vision", r=2)
    model.set_frozen(["lm"])
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_()
    model.eval()
    ids = torch.tensor([[1, 5, 9, 3]])
    img = torch.randn(1, 3, 32, 32)
    before = model(ids, torch.ones_like(ids), images=img).logits
    loaded = VLM.from_pretrained(model.save_pretrained(tmp_path / "ckpt"))
    torch.testing.assert_close(loaded(ids, torch.ones_like(ids), images=img).logits, before, rtol=0, atol=0)
    assert loaded.trainable_parameters_by_component()["lm"] == 0

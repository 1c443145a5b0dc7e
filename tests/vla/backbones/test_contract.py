"""Contract tests over every registered vision encoder x connector (tiny configs): output shapes, token
counts, gradients flow where unfrozen and not where frozen."""

import pytest
import torch

from vla.backbones import CONNECTORS, VISION_ENCODERS, build_connector, build_vision_encoder
from vla.backbones.presets import CONNECTOR_NAMES, VISION_NAMES, tiny_connector_config, tiny_vision_config

H = 48  # LM hidden size the connectors project to


def test_presets_cover_every_registered_component():
    assert sorted(VISION_NAMES) == VISION_ENCODERS.names()
    assert sorted(CONNECTOR_NAMES) == CONNECTORS.names()


def _grads(module):
    return [p.grad for p in module.parameters()]


@pytest.mark.parametrize("connector", CONNECTOR_NAMES)
@pytest.mark.parametrize("encoder", VISION_NAMES)
def test_encoder_connector_contract(encoder, connector):
    torch.manual_seed(0)
    enc = build_vision_encoder(tiny_vision_config(encoder))
    conn = build_connector(tiny_connector_config(connector), enc.embed_dim, H)
    images = torch.randn(2, 3, 32, 32)
    feats = enc(images)
    p = enc.num_patches()
    assert feats.shape == (2, p, enc.embed_dim)
    out = conn(feats)
    q = conn.num_tokens(p)
    assert out.shape == (2, q, H)
    assert torch.isfinite(out).all()

    out.square().mean().backward()
    enc_grads = [g for g in _grads(enc) if g is not None]
    conn_grads = [g for g in _grads(conn) if g is not None]
    assert enc_grads and any(g.abs().sum() > 0 for g in enc_grads), "no gradient reached the encoder"
    assert len(conn_grads) == len(list(conn.parameters())), "a connector parameter got no gradient"

    # Frozen encoder: no encoder gradient, the connector still learns.
    enc.zero_grad(set_to_none=True)
    conn.zero_grad(set_to_none=True)
    for prm in enc.parameters():
        prm.requires_grad_(False)
    conn(enc(images)).square().mean().backward()
    assert all(g is None for g in _grads(enc))
    assert all(g is not None for g in _grads(conn))


@pytest.mark.parametrize("encoder", VISION_NAMES)
def test_encoders_accept_other_image_sizes(encoder):
    """Position embeddings are interpolated (HF) or computed (conv) for a size other than the native one."""
    enc = build_vision_encoder(tiny_vision_config(encoder))
    out = enc(torch.randn(1, 3, 48, 64))
    assert out.shape == (1, enc.num_patches((48, 64)), enc.embed_dim)
    assert enc.num_patches((48, 64)) == 6 * 8


@pytest.mark.parametrize("encoder", ["siglip", "conv", "fused"])
def test_encoders_reject_bad_images(encoder):
    enc = build_vision_encoder(tiny_vision_config(encoder))
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        enc(torch.randn(1, 4, 32, 32))
    with pytest.raises(ValueError, match="dtype"):
        enc(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="cannot take images of 7x32 with patch size 8"):
        enc(torch.randn(1, 3, 7, 32))
    if encoder == "conv":  # strided convs need exact multiples; ViT patch embeddings floor
        with pytest.raises(ValueError, match="multiples of 8"):
            enc(torch.randn(1, 3, 30, 32))
    else:
        assert enc(torch.randn(1, 3, 30, 32)).shape[1] == 3 * 4


def test_fused_concatenates_parts_per_patch():
    enc = build_vision_encoder(tiny_vision_config("fused"))
    assert enc.embed_dim == sum(p.embed_dim for p in enc.parts)
    x = torch.rand(2, 3, 32, 32)
    out = enc(x)
    first = enc.parts[0]((x - enc.mean0) / enc.std0)
    torch.testing.assert_close(out[..., : first.shape[-1]], first)


def test_fused_rejects_parts_with_different_grids():
    from vla.backbones.config import VisionConfig

    a = tiny_vision_config("dinov2").__dict__ | {"hf": {**tiny_vision_config("dinov2").hf, "patch_size": 4}}
    b = tiny_vision_config("siglip").__dict__
    with pytest.raises(ValueError, match="different patch grids"):
        build_vision_encoder(VisionConfig(name="fused", image_size=32, parts=[a, b]))


def test_unknown_names_list_the_known_ones():
    from vla.backbones import ConnectorConfig, VisionConfig

    with pytest.raises(ValueError, match="expected one of .*siglip"):
        build_vision_encoder(VisionConfig(name="resnet"))
    with pytest.raises(ValueError, match="expected one of .*perceiver"):
        build_connector(ConnectorConfig(name="nope"), 8, 8)


@pytest.mark.parametrize(("name", "tokens"), [("perceiver", 64), ("qformer", 32), ("cross_attn", 256)])
def test_query_connectors_default_to_paper_token_counts(name, tokens):
    from vla.backbones import ConnectorConfig

    conn = build_connector(ConnectorConfig(name=name), 16, 32)
    assert conn.num_tokens(100) == tokens
    assert conn(torch.randn(1, 100, 16)).shape == (1, tokens, 32)


def test_token_merge_and_cross_attn_validate_patch_counts():
    from vla.backbones import ConnectorConfig

    merge = build_connector(ConnectorConfig(name="token_merge"), 8, 8)
    x = torch.randn(1, 10, 8)
    assert merge.num_tokens(10) == 3 and merge(x).shape == (1, 3, 8)  # zero-padded 10 -> 12 patches
    torch.testing.assert_close(merge(x)[:, :2], merge(torch.cat([x, torch.randn(1, 2, 8)], 1))[:, :2])
    with pytest.raises(ValueError, match="square"):
        build_connector(ConnectorConfig(name="cross_attn", num_queries=4), 8, 8)(torch.randn(1, 10, 8))
    with pytest.raises(ValueError, match=r"\[B,P,8\]"):
        build_connector(ConnectorConfig(name="linear"), 8, 8)(torch.randn(1, 10, 7))

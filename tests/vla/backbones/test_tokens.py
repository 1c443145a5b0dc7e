"""State and point-cloud encoders: shapes, permutation invariance (hypothesis), clear errors."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vla.backbones import POINT_ENCODERS, PointEncoderConfig, StateEncoderConfig, build_point_encoder
from vla.backbones.tokens import StateEncoder, farthest_point_sample


def test_state_encoder_makes_k_tokens():
    enc = StateEncoder(StateEncoderConfig(dim=15, num_tokens=3), out_dim=32)
    assert enc(torch.randn(4, 15)).shape == (4, 3, 32)
    with pytest.raises(ValueError, match=r"\[B,15\]"):
        enc(torch.randn(4, 14))


def test_farthest_point_sampling_spreads_out():
    # Two tight clusters far apart: 2 centres must land in different clusters.
    xyz = torch.cat([torch.randn(1, 50, 3) * 0.01, torch.randn(1, 50, 3) * 0.01 + 10.0], dim=1)
    idx = farthest_point_sample(xyz, 2)[0]
    assert {int(i) < 50 for i in idx} == {True, False}


_ENCODERS = {
    n: build_point_encoder(PointEncoderConfig(name=n, num_groups=6, group_size=8, width=16), 24).eval()
    for n in POINT_ENCODERS.names()
}


@settings(max_examples=15, deadline=None)
@given(
    name=st.sampled_from(sorted(_ENCODERS)),
    n=st.integers(min_value=12, max_value=80),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
)
def test_point_encoders_are_permutation_invariant(name, n, seed):
    rng = np.random.default_rng(seed)
    pts = torch.as_tensor(rng.normal(size=(2, n, 3)), dtype=torch.float32)
    perm = torch.as_tensor(rng.permutation(n))
    enc = _ENCODERS[name]
    with torch.no_grad():
        a, b = enc(pts), enc(pts[:, perm])
    assert a.shape == (2, 6, 24)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_point_encoder_uses_colour_features_and_validates():
    enc = build_point_encoder(PointEncoderConfig(num_groups=4, group_size=4, in_features=6), 16)
    pts = torch.randn(1, 20, 6)
    other = pts.clone()
    other[..., 3:] += 1.0  # same geometry, different colours
    assert not torch.allclose(enc(pts), enc(other))
    with pytest.raises(ValueError, match=r"\[B,N,6\]"):
        enc(torch.randn(1, 20, 3))
    with pytest.raises(ValueError, match="N >= 4"):
        enc(torch.randn(1, 3, 6))

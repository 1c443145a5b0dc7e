"""Optimiser groups, warmup + cosine schedule, EMA and RNG snapshot/restore (bit-exact resume pieces)."""

import random

import numpy as np
import pytest
import torch
from torch import nn

from vla.training.ema import EMA
from vla.training.optim import build_optimizer, param_groups, warmup_cosine, warmup_cosine_factor
from vla.training.rng import rng_state, seed_everything, set_rng_state


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.lin = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 10, bias=False)
        self.head.weight = self.emb.weight  # tied
        self.query = nn.Parameter(torch.zeros(8))
        self.frozen = nn.Linear(8, 8)
        self.frozen.requires_grad_(False)


def test_param_groups_split_decay_and_skip_frozen_and_tied():
    net = _Net()
    groups = param_groups(net, 0.1)
    decay = {id(p) for p in groups[0]["params"]}
    no_decay = {id(p) for p in groups[1]["params"]}
    assert decay == {id(net.lin.weight)}
    assert no_decay == {
        id(net.emb.weight),
        id(net.lin.bias),
        id(net.norm.weight),
        id(net.norm.bias),
        id(net.query),
    }
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    net.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        build_optimizer(net, lr=1e-3)


def test_warmup_cosine_shape():
    f = [warmup_cosine_factor(s, 10, 110, 0.1) for s in range(120)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(f[:10], f[1:10]))  # warmup rises
    assert all(a >= b - 1e-12 for a, b in zip(f[10:110], f[11:111]))  # cosine falls
    assert f[110] == pytest.approx(0.1) and f[119] == pytest.approx(0.1)
    opt = build_optimizer(nn.Linear(2, 2), lr=1.0)
    sched = warmup_cosine(opt, 10, 110, 0.1)
    for _ in range(9):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="total_steps"):
        warmup_cosine_factor(0, 0, 0)


def test_ema_tracks_and_swaps_weights():
    net = nn.Linear(3, 3)
    ema = EMA(net, decay=0.9)
    original = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    for _ in range(200):
        ema.update(net)
    assert torch.allclose(ema.shadow["weight"], net.weight, atol=1e-3)  # converges to constant weights
    with torch.no_grad():
        net.weight.copy_(original)
    with ema.applied(net):
        assert torch.allclose(net.weight, original + 1.0, atol=1e-3)
    assert torch.equal(net.weight, original)  # restored afterwards
    with pytest.raises(ValueError, match="decay"):
        EMA(net, decay=1.0)


def test_ema_skips_frozen_parameters_and_tracks_them_once_unfrozen():
    """A frozen parameter is left out of the update (its average is itself); a tied weight (two names,
    one tensor) is averaged under both names; a parameter unfrozen later is averaged from then on."""
    net = nn.Sequential(nn.Embedding(4, 3), nn.Linear(3, 4, bias=False))
    net[1].weight = net[0].weight  # tied: state_dict holds it as 0.weight and 1.weight
    frozen = nn.Linear(3, 3)
    frozen.requires_grad_(False)
    net.append(frozen)
    ema = EMA(net, decay=0.5)
    frozen_before = ema.shadow["2.weight"].clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
        frozen.weight.add_(1.0)  # a frozen weight that changes anyway is not averaged: it is "frozen"
    ema.update(net)
    assert torch.equal(ema.shadow["2.weight"], frozen_before)
    assert torch.equal(ema.shadow["0.weight"], ema.shadow["1.weight"])
    assert not torch.equal(ema.shadow["0.weight"], net[0].weight)  # moved most of the way, not all
    frozen.requires_grad_(True)
    for _ in range(100):
        ema.update(net)
    assert torch.allclose(ema.shadow["2.weight"], frozen.weight, atol=1e-3)


def test_ema_update_is_the_per_tensor_formula_to_the_bit():
    """The fused multi-tensor update computes exactly d * shadow + (1 - d) * weight per tensor (runs
    reproduce to the episode across this change), buffers included, for a float32 and a bf16 model."""
    for dtype in (torch.float32, torch.bfloat16):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(5, 7), nn.LayerNorm(7), nn.BatchNorm1d(7)).to(dtype)
        ema = EMA(net, decay=0.99)
        expected = {k: v.clone() for k, v in ema.shadow.items()}
        for _ in range(5):
            with torch.no_grad():
                for p in net.parameters():
                    p.add_(torch.randn_like(p))
                net[2].running_mean.add_(1.0)  # a buffer training changes
            d = ema.current_decay()
            live = net.state_dict()
            for k in expected:
                expected[k].mul_(d).add_(live[k].float(), alpha=1.0 - d)
            ema.update(net)
        assert set(ema.shadow) == set(expected)
        for k in expected:
            assert torch.equal(ema.shadow[k], expected[k]), k


def test_ema_follows_weights_whose_state_dict_name_a_hook_changed():
    """A module whose state_dict hook renames its keys is averaged under the saved names as before."""

    def rename(module, state, prefix, local_metadata):
        state[prefix + "w_saved"] = state.pop(prefix + "weight")

    net = nn.Linear(2, 2)
    net._register_state_dict_hook(rename)
    ema = EMA(net, decay=0.5)
    assert set(ema.shadow) == {"w_saved", "bias"}
    with torch.no_grad():
        net.weight.add_(1.0)
    before, d = ema.shadow["w_saved"].clone(), ema.current_decay()
    ema.update(net)
    assert torch.equal(ema.shadow["w_saved"], before.mul_(d).add_(net.weight.detach(), alpha=1.0 - d))


def _draws():
    legacy_np = float(np.random.rand())  # noqa: NPY002 - the legacy global generator is what is restored
    return (random.random(), legacy_np, torch.rand(3).tolist(), torch.randn(2).tolist())


def test_rng_state_roundtrip_is_bit_exact(tmp_path):
    seed_everything(123)
    _draws()
    random.gauss(0, 1)  # leaves a cached gauss value in Python's generator
    state = rng_state()
    torch.save(state, tmp_path / "rng.pt")
    expected = _draws()
    seed_everything(999)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert _draws() == expected


def test_optimizer_is_fused_on_plain_tensors_and_steps_like_the_loop():
    """build_optimizer takes AdamW's fused kernel for plain CPU/CUDA parameters; it updates as the
    per-tensor loop does (to float rounding)."""
    torch.manual_seed(0)
    a, b = nn.Linear(6, 4), nn.Linear(6, 4)
    b.load_state_dict(a.state_dict())
    fused = build_optimizer(a, lr=1e-2)
    assert all(g["fused"] for g in fused.param_groups)
    loop = torch.optim.AdamW(param_groups(b, 0.01), lr=1e-2, betas=(0.9, 0.95), foreach=False)
    x = torch.randn(5, 6)
    for _ in range(3):
        for m, opt in ((a, fused), (b, loop)):
            m(x).square().sum().backward()
            opt.step()
            opt.zero_grad()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)

"""Ordinal soft labels for bin action tokens: targets, the loss's order sense, wiring into the VLA."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vla.models.losses import gaussian_bin_targets, ordinal_action_loss
from vla.backbones.text import IGNORE_INDEX as IGNORE


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 300), st.floats(0.3, 10.0), st.data())
def test_gaussian_targets_are_distributions_peaked_at_the_bin(n_bins, sigma, data):
    bins = torch.tensor(data.draw(st.lists(st.integers(0, n_bins - 1), min_size=1, max_size=8)))
    q = gaussian_bin_targets(bins, n_bins, sigma)
    assert q.shape == (len(bins), n_bins)
    assert torch.allclose(q.sum(1), torch.ones(len(bins)), atol=1e-5)
    assert torch.equal(q.argmax(1), bins)


def _logits_peaked_at(lm_id, vocab=40):
    x = torch.zeros(1, 1, vocab)
    x[0, 0, lm_id] = 8.0
    return x


def test_near_misses_cost_less_than_far_ones_and_plain_tokens_keep_cross_entropy():
    lm_ids = torch.arange(10, 30)  # 20 bins at LM ids 10..29
    target = torch.tensor([[10 + 8]])  # bin 8
    near = ordinal_action_loss(_logits_peaked_at(10 + 9), target, lm_ids, sigma=2.0)
    far = ordinal_action_loss(_logits_peaked_at(10 + 19), target, lm_ids, sigma=2.0)
    exact = ordinal_action_loss(_logits_peaked_at(10 + 8), target, lm_ids, sigma=2.0)
    assert exact < near < far
    # A non-action label (e.g. EOS = id 2) is plain cross-entropy; ignored positions do not count.
    logits = torch.randn(2, 3, 40)
    target = torch.tensor([[2, IGNORE, 5], [IGNORE, IGNORE, 7]])
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 40), target.reshape(-1), ignore_index=IGNORE)
    assert torch.allclose(ordinal_action_loss(logits, target, lm_ids, 1.0), ce, atol=1e-6)
    with pytest.raises(ValueError, match="sigma"):
        ordinal_action_loss(logits, target, lm_ids, 0.0)


def test_gradient_reaches_the_logits():
    logits = torch.randn(2, 4, 40, requires_grad=True)
    target = torch.tensor([[12, 15, 2, IGNORE], [29, 10, 2, IGNORE]])
    ordinal_action_loss(logits, target, torch.arange(10, 30), 2.0).backward()
    assert logits.grad is not None and float(logits.grad.abs().sum()) > 0
    assert float(logits.grad[:, 3].abs().sum()) == 0.0  # ignored positions get no gradient


def test_vla_uses_the_ordinal_loss_only_for_bin_tokenizers():
    """The VLA's training loss switches to soft labels with sigma > 0; FAST (no bin order) is refused."""
    from tests.vla.models.test_vla import _tiny

    vla = _tiny("uniform", chunk_len=1)
    proc = vla.processor
    obs = {
        "images/static": torch.zeros(1, 32, 32, 3, dtype=torch.uint8),
        "images/wrist": torch.zeros(1, 32, 32, 3, dtype=torch.uint8),
        "state": torch.zeros(1, 15),
        "action": torch.full((1, 7), 0.01),
        "instruction": "lift the red cube",
    }
    batch = proc.collate([obs, {**obs, "action": torch.full((1, 7), -0.02)}])
    plain = float(vla(batch)["loss"])
    vla.set_action_label_sigma(2.0)
    soft = float(vla(batch)["loss"])
    assert soft != pytest.approx(plain, rel=1e-3) and soft > 0
    with pytest.raises(ValueError, match=">= 0"):
        vla.set_action_label_sigma(-1.0)
    with pytest.raises(ValueError, match="bin tokenizer"):
        _tiny("fast", chunk_len=4).set_action_label_sigma(2.0)

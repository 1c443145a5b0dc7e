"""The continuous head's K hypotheses (`action_modes`, vla/models/action_head.py): shapes and errors, the
multiple-choice loss, a two-plan problem an L1 head averages and a K-hypothesis head keeps apart, and
`vla train action_modes=K` through the checkpoint to `predict_action`."""

import json

import numpy as np
import pytest
import torch

from vla.cli import main as cli
from vla.models.action_head import L1ActionHead
from vla.models.vla import VLA


def test_hypotheses_shapes_and_the_best_scored_chunk():
    torch.manual_seed(0)
    head = L1ActionHead(hidden=16, chunk_len=3, action_dim=5, modes=4)
    hidden = torch.randn(2, 3, 16)  # [B,T,H]
    chunks, scores = head.hypotheses(hidden)
    assert chunks.shape == (2, 4, 3, 5) and scores.shape == (2, 4)
    top = scores.argmax(dim=1)
    y = head(hidden)
    assert y.shape == (2, 3, 5)
    for b in range(2):
        assert torch.equal(y[b], chunks[b, top[b]])
    one = L1ActionHead(hidden=16, chunk_len=3, action_dim=5)
    assert one.score is None and one(hidden).shape == (2, 3, 5)
    assert one.mlp[-1].out_features == 5  # K = 1 keeps the plain head's parameters (and checkpoints)
    with pytest.raises(ValueError, match="modes must be >= 1"):
        L1ActionHead(16, 3, 5, modes=0)
    with pytest.raises(ValueError, match=r"expected hidden states \[B, T=3, H\]"):
        head(torch.randn(2, 2, 16))
    with pytest.raises(ValueError, match=r"do not fit target"):
        head.modes_loss(chunks, scores, torch.zeros(2, 3, 4))


def test_the_loss_takes_the_best_chunk_and_teaches_the_scores_which_it_was():
    head = L1ActionHead(hidden=8, chunk_len=1, action_dim=2, modes=3, spread=0.0)
    target = torch.zeros(2, 1, 2)
    chunks = torch.tensor([[0.5, 0.1, 0.9], [0.2, 0.7, 0.05]])[:, :, None, None].expand(2, 3, 1, 2)
    scores = torch.tensor([[0.0, 5.0, 0.0], [5.0, 0.0, 0.0]])  # row 0 right, row 1 wrong
    loss, parts = head.modes_loss(chunks, scores, target)
    assert parts["best_l1"].item() == pytest.approx((0.1 + 0.05) / 2)
    assert parts["choice_acc"].item() == 0.5
    want_ce = torch.nn.functional.cross_entropy(scores, torch.tensor([1, 2]))
    assert parts["choice_ce"].item() == pytest.approx(want_ce.item(), rel=1e-6)
    assert loss.item() == pytest.approx(0.075 + 0.1 * want_ce.item(), rel=1e-6)


def test_two_plans_an_l1_head_blurs_and_two_hypotheses_keep_apart():
    """One input, two equally likely targets (+1 or -1 in x: the push to either marker). The single L1
    head may settle anywhere between them (every point of [-1, 1] is a median); two hypotheses settle on
    the two plans, and the scores learn which plan a context that tells them apart asks for."""
    torch.manual_seed(0)
    n = 64
    which = torch.arange(n) % 2  # the plan of each sample, half and half
    target = torch.zeros(n, 1, 2)
    target[:, 0, 0] = which.float() * 2 - 1
    ambiguous = torch.ones(n, 1, 4)  # [B,T,H]: nothing tells the plans apart
    told = torch.cat([ambiguous[:, :, :2], (which.float() * 2 - 1)[:, None, None].expand(n, 1, 2)], dim=2)
    results = {}
    for name, modes, hidden in (("l1", 1, ambiguous), ("two", 2, ambiguous), ("told", 2, told)):
        torch.manual_seed(1)
        head = L1ActionHead(hidden=4, chunk_len=1, action_dim=2, modes=modes)
        opt = torch.optim.Adam(head.parameters(), lr=2e-2)
        for _ in range(300):
            chunks, scores = head.hypotheses(hidden)
            loss = (
                head.loss(chunks[:, 0], target) if modes == 1 else head.modes_loss(chunks, scores, target)[0]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            results[name] = head.hypotheses(hidden), head(hidden)
    (l1_chunks, _), _ = results["l1"]
    assert abs(l1_chunks[0, 0, 0, 0].item()) < 0.9  # not on either plan
    (two_chunks, _), _ = results["two"]
    xs = sorted(two_chunks[0, :, 0, 0].tolist())
    assert xs[0] < -0.9 and xs[1] > 0.9  # one hypothesis per plan
    _, acted = results["told"]
    assert torch.all((acted[:, 0, 0] > 0) == (which == 1))  # the scores pick the plan the context names


def test_vla_train_action_modes_round_trips_through_the_checkpoint(tiny_train_store, tmp_path, capsys):
    torch.set_num_threads(1)
    base = [
        "train",
        str(tiny_train_store),
        "cameras=[front]",
        "trainer.progress=false",
        "trainer.batch_size=4",
    ]
    run = [*base, "trainer.batch_size=4", "trainer.steps=2", "val_episodes=1", "model.vision.image_size=16"]
    run.append("action_head=l1")
    assert cli([*run, f"out={tmp_path / 'run'}", "action_modes=3", "use_state=false"]) == 0
    ck = tmp_path / "run" / "checkpoints" / "step_00000002"
    config = json.loads((ck / "config.json").read_text())
    assert config["vla"]["action_modes"] == 3 and config["train"]["action_modes"] == 3
    model = VLA.from_pretrained(ck)
    assert model.action_head.modes == 3
    obs = {"images/front": np.zeros((16, 16, 3), np.uint8), "instruction": "lift the red cube"}
    act = model.predict_action(obs)
    assert np.asarray(act).shape[-1] == 7 and np.all(np.isfinite(act))
    capsys.readouterr()
    assert cli([*run, f"out={tmp_path / 'bad'}", "action_head=tokens", "action_modes=2"]) == 2
    assert "action_modes" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()

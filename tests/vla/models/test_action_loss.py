"""The continuous head's training loss (`vla train action_loss=l1|mse`, vla/models/action_head.py): the two
losses on known values and their gradients, a tiny VLA's loss is the chosen one of its prediction against
the processor's normalised targets, bad combinations fail clearly, and `vla train action_loss=mse` trains
a checkpoint that acts."""

import json

import numpy as np
import pytest
import torch

from action_tokenizers import make_tokenizer
from vla.backbones.config import compose_model_config
from vla.cli import main as cli
from vla.core.normalizer import Normalizer, compute_stats
from vla.models.action_head import check_action_loss, regression_loss
from vla.models.vla import VLA
from vla.processor import ProcessorConfig

RNG = np.random.default_rng(3)
ACTIONS = (RNG.standard_normal((200, 7)) * 0.05).astype(np.float32)
NORM = Normalizer({"action": compute_stats(ACTIONS)}, {"action": "q99"})


def _tiny(action_head="l1", action_modes=1):
    torch.manual_seed(0)
    tok = make_tokenizer("uniform", action_dim=7, chunk_len=1).fit(ACTIONS[:, None])
    cfg = compose_model_config("tiny", ["vision.image_size=16", "vision.hf.patch_size=8"])
    pcfg = ProcessorConfig(cameras=["front"], use_state=False)
    return VLA.build(cfg, pcfg, tok, NORM, action_head=action_head, action_modes=action_modes)


def _samples(n):
    rng = np.random.default_rng(0)
    return [
        {
            "images/front": torch.as_tensor(rng.integers(0, 255, (1, 16, 16, 3), dtype=np.uint8)),
            "action": torch.as_tensor(ACTIONS[i : i + 1]),
            "instruction": "lift the red cube",
        }
        for i in range(n)
    ]


def test_the_two_losses_on_known_values_and_their_pull():
    pred = torch.tensor([[0.5, 0.05], [0.0, -1.0]], requires_grad=True)
    target = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    assert regression_loss(pred, target, "l1").item() == pytest.approx((0.5 + 0.05 + 1.0) / 4)
    mse = regression_loss(pred, target, "mse")
    assert mse.item() == pytest.approx((0.25 + 0.0025 + 1.0) / 4)
    (grad,) = torch.autograd.grad(mse, pred)
    assert grad[0, 0] / grad[0, 1] == pytest.approx(10.0)  # ten times the error, ten times the pull
    (grad,) = torch.autograd.grad(regression_loss(pred, target, "l1"), pred)
    assert grad[0, 0] == grad[0, 1]  # L1: every error pulls alike
    with pytest.raises(ValueError, match=r"pred \(2, 2\) != target \(2, 1\)"):
        regression_loss(pred, target[:, :1], "mse")
    with pytest.raises(ValueError, match=r"action_loss must be one of \['l1', 'mse'\], got 'huber'"):
        check_action_loss("huber")


def test_the_vla_trains_on_the_chosen_loss_of_its_normalised_prediction():
    """With the head's last layer zeroed and its bias b, every prediction is b: the loss must be the mean
    |b - target| or (b - target)^2 over the processor's normalised targets."""
    model = _tiny().train()
    last = model.action_head.mlp[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.linspace(-0.5, 0.5, 7))
    batch = model.processor.collate(_samples(6))
    err = last.bias.detach() - batch["actions"]  # [B,1,D] normalised
    assert model.action_loss == "l1"
    assert model(batch)["loss"].item() == pytest.approx(err.abs().mean().item(), rel=1e-5)
    model.set_action_loss("mse")
    assert model(batch)["loss"].item() == pytest.approx(err.square().mean().item(), rel=1e-5)


def test_bad_combinations_fail_clearly():
    with pytest.raises(ValueError, match="action_loss must be one of"):
        _tiny().set_action_loss("l2")
    with pytest.raises(ValueError, match="needs action_head='l1'"):
        _tiny(action_head="tokens").set_action_loss("mse")
    with pytest.raises(ValueError, match="one hypothesis"):
        _tiny(action_modes=2).set_action_loss("mse")
    _tiny(action_head="tokens").set_action_loss("l1")  # the default is accepted everywhere


def test_vla_train_action_loss_mse_saves_it_and_acts(tiny_train_store, tmp_path, capsys):
    torch.set_num_threads(1)
    run = [
        "train",
        str(tiny_train_store),
        "cameras=[front]",
        "trainer.progress=false",
        "trainer.batch_size=4",
        "trainer.steps=2",
        "val_episodes=1",
        "model.vision.image_size=16",
        "use_state=false",
    ]
    assert cli([*run, f"out={tmp_path / 'run'}", "action_head=l1", "action_loss=mse"]) == 0
    ck = tmp_path / "run" / "checkpoints" / "step_00000002"
    assert json.loads((ck / "config.json").read_text())["train"]["action_loss"] == "mse"
    act = VLA.from_pretrained(ck).predict_action(
        {"images/front": np.zeros((16, 16, 3), np.uint8), "instruction": "lift the red cube"}
    )
    assert np.asarray(act).shape[-1] == 7 and np.all(np.isfinite(act))
    for bad in (["action_head=tokens", "action_loss=mse"], ["action_head=l1", "action_loss=huber"]):
        capsys.readouterr()
        assert cli([*run, f"out={tmp_path / 'bad'}", *bad]) == 2
        assert "action_loss" in capsys.readouterr().err
        assert not (tmp_path / "bad").exists()

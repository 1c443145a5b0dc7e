"""`vla train` bad input fails before the first step with a clear message; the composed config reaches the
trainer and the checkpoint (mixture weights: tests/vla/data/test_mixture.py)."""

import json
import re

import numpy as np
import pytest
import torch

from vla.cli import main as cli
from vla.commands.train import load_config, trainer_config
from vla.data import synthetic
from vla.data.store import EpisodeStore


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("syn") / "syn.zarr"
    feats = synthetic.features(16, 16)
    st = EpisodeStore.create(path, feats, fps=10)
    for s in range(3):
        ep = synthetic.episode(feats, 12, s)
        ep["action"] = np.random.default_rng(s).uniform(-1, 1, (12, 7)).astype(np.float32)
        st.append_episode(ep, {"instruction": "lift the red cube", "task": "pick"})
    st.close()
    return path


def _train(store, tmp_path, *extra):
    return cli(["train", str(store), f"out={tmp_path}", "cameras=[front]", "trainer.progress=false", *extra])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["cameras=[front,wrist]"], "images/wrist"),
        (["tokenizer.action_dim=6"], "expects \\(6,\\)"),
        (["tokenizer=nope"], "tokenizer"),
        (["model.vision.name=nope"], "nope"),
        (["val_episodes=3"], "val_episodes"),
        (["trainer.precision=fp8"], "precision"),
        (["action_head=diffusion"], "action_head must be one of"),
        (["action_head=l1", "action_label_sigma=2"], "action tokens"),
        (["action_head=l1", "+data@cotrain=vqa_cotrain", "cotrain.vqa.0.source.path=x"], "action tokens"),
    ],
)
def test_bad_input_fails_before_training(store, tmp_path, capsys, overrides, message):
    code = _train(store, tmp_path, "trainer.steps=2", *overrides)
    assert code == 1
    err = capsys.readouterr().err
    assert "vla train: error:" in err
    assert re.search(message, err), err
    assert not (tmp_path / "checkpoints").exists()


def test_missing_store_is_file_not_found(tmp_path, capsys):
    assert cli(["train", str(tmp_path / "none.zarr"), f"out={tmp_path}"]) == 1
    assert "not found" in capsys.readouterr().err


def test_config_reaches_trainer_and_checkpoint(store, tmp_path):
    cfg = load_config(
        [
            str(store),
            "chunk_len=3",
            "trainer.lr=1e-4",
            "trainer.freeze_schedule=[{until: 2, train: [connector]}]",
        ]
    )
    assert cfg.tokenizer["chunk_len"] == 3 and cfg.data.n_action == 3
    t = trainer_config(cfg)
    assert t.lr == 1e-4 and t.freeze_schedule[0].until == 2 and t.freeze_schedule[0].train == ["connector"]
    torch.set_num_threads(1)
    assert (
        _train(
            store,
            tmp_path,
            "trainer.steps=3",
            "trainer.batch_size=4",
            "val_episodes=1",
            "chunk_len=2",
            "model.vision.image_size=16",
            f"mixture=[{{path: {store}, weight: 2.0}}]",  # the store again: a two-source MixtureDataset
        )
        == 0
    )
    ck = tmp_path / "checkpoints" / "step_00000003"
    config = json.loads((ck / "config.json").read_text())
    assert config["vla"]["chunk_len"] == 2 and config["train"]["trainer"]["steps"] == 3
    assert (ck / "train_state.pt").is_file() and (tmp_path / "log.jsonl").is_file()


def test_model_preset_replaces_the_default_whole():
    """`model=<preset>` must not inherit the CPU default's sizes (a SigLIP with hidden 64 would build)."""
    from vla.cli import register_all_schemas
    from vla.core.config import compose

    register_all_schemas()
    big = compose("train", ["model=siglip_qwen2_0p5b"]).model
    assert (big.vision.name, big.vision.image_size, big.vision.hf.hidden_size) == ("siglip", 384, 1152)
    assert big.lm.hf.hidden_size == 896
    tiny = compose("train").model
    assert (tiny.vision.name, tiny.vision.image_size, tiny.vision.hf.patch_size) == ("conv", 64, 16)

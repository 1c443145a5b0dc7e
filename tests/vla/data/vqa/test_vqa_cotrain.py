"""Co-training from config: the YAML preset builds a mixture of a real episode store (windows) and a LLaVA
VQA source; stratified batches hold both, collated per task with the task tag and a zero state."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import default_collate

from vla.backbones import compose_model_config
from vla.core.config import config_dir
from vla.data.store import EpisodeStore
from vla.data.synthetic import episode, features
from vla.data.vqa.cotrain import CoTrainConfig, build_cotrain, cotrain_collator
from vla.data.mixture import MixtureBatchSampler
from vla.data.windows import WindowDataset, WindowSpec


def _config(vqa_path, overrides=()):
    """The YAML preset validated by the schema, with the VQA path set and top-level key=value overrides."""
    preset = OmegaConf.load(config_dir() / "data" / "vqa_cotrain.yaml")
    preset.pop("defaults")
    merged = OmegaConf.merge(
        OmegaConf.structured(CoTrainConfig), preset, OmegaConf.from_dotlist(list(overrides))
    )
    merged.vqa[0].source.path = str(vqa_path)
    return OmegaConf.to_object(merged)


@pytest.fixture
def robot(tmp_path):
    feats = features()
    store = EpisodeStore.create(tmp_path / "demo.zarr", feats, fps=10)
    for i in range(3):
        store.append_episode(episode(feats, 12, seed=i + 1), {"instruction": "pick", "task": "pick"})
    store.close()
    return WindowDataset(tmp_path / "demo.zarr", WindowSpec(n_obs=1, n_action=2))


def test_preset_builds_a_stratified_robot_and_vqa_mixture(robot, llava_file, tiny_vlm):
    path, _ = llava_file
    cfg = _config(path, ["robot_weight=3.0"])
    mix, schedule = build_cotrain(cfg, robot)
    assert mix.names == ["robot", "vqa"] and len(mix) == len(robot) + 3
    assert schedule.weights_at(0) == pytest.approx({"robot": 0.75, "vqa": 0.25})
    sampler = MixtureBatchSampler(mix, 8, schedule, stratified=cfg.stratified)
    items = [mix[i] for i in sampler.batch(0)]
    assert sum(it["task"] == "robot" for it in items) == 6
    vlm = tiny_vlm
    collate = cotrain_collator(cfg, default_collate, vlm.tokenizer, vlm.vision.transform, state_dim=15)
    batch = collate(items)
    assert batch["counts"] == {"robot": 6, "vqa": 2}
    assert batch["tasks"]["robot"]["action"].shape == (6, 2, 7)
    vqa = batch["tasks"]["vqa"]
    assert vqa["state"].shape == (2, 15) and not vqa["state"].any()
    assert vlm.tokenizer.decode(vqa["input_ids"][0]).count("[vqa] Question:") == 1
    no_state = cotrain_collator(cfg, default_collate, vlm.tokenizer, vlm.vision.transform)(items)["tasks"][
        "vqa"
    ]
    assert torch.isfinite(vlm(**no_state).loss)


def test_schedule_from_config_and_errors(robot, llava_file):
    path, _ = llava_file
    knots = "schedule=[{step: 0, weights: {robot: 1, vqa: 1}}, {step: 100, weights: {robot: 1, vqa: 0}}]"
    mix, schedule = build_cotrain(_config(path, [knots, "interpolate=step"]), robot)
    assert schedule.weights_at(99)["vqa"] == 0.5 and schedule.weights_at(100)["vqa"] == 0.0
    assert float(mix.sample_weights(schedule.weights_at(100))[len(robot) :].sum()) == 0.0
    bad = "schedule=[{step: 0, weights: {robot: 1, web: 1}}]"
    with pytest.raises(ValueError, match="schedule names \\['robot', 'web'\\]"):
        build_cotrain(_config(path, [bad]), robot)
    with pytest.raises(FileNotFoundError, match="LLaVA instruction file not found"):
        build_cotrain(_config("/nonexistent.json"), robot)
    vqa_only, _ = build_cotrain(_config(path), None)
    assert vqa_only.names == ["vqa"]


def test_vla_cotrains_on_robot_and_vqa_in_one_batch_through_the_trainer(robot, llava_file, tmp_path):
    from action_tokenizers import make_tokenizer
    from vla.data.vqa.cotrain import CoTrainLoss
    from vla.models.vla import VLA
    from vla.processor import ProcessorConfig
    from vla.training.trainer import Trainer, TrainerConfig

    path, _ = llava_file
    cfg = _config(path)
    mix, schedule = build_cotrain(cfg, robot)
    store = EpisodeStore.open(tmp_path / "demo.zarr")
    norm = store.normalizer({"action": "q99", "state": "meanstd"})
    acts = np.asarray(store.episode(0, keys=["action"])["action"], dtype=np.float64)  # [T,7]
    tok = make_tokenizer("uniform", action_dim=7, chunk_len=2).fit(
        np.stack([norm.normalize("action", acts[i : i + 2]) for i in range(len(acts) - 1)])
    )
    torch.manual_seed(0)
    pcfg = ProcessorConfig(cameras=["front"], state_dim=15)
    vla = VLA.build(compose_model_config("tiny"), pcfg, tok, norm)
    collate = cotrain_collator(cfg, vla.processor.collate, vla.vlm.tokenizer, vla.vlm.vision.transform, 15)
    items = [mix[i] for i in MixtureBatchSampler(mix, 6, schedule, stratified=True).batch(0)]
    model = CoTrainLoss(vla)
    out = model(collate(items))
    assert {"loss", "loss_robot", "loss_vqa", "share_robot", "share_vqa", "action_acc"} <= set(out)
    assert torch.isfinite(out["loss"]) and float(out["share_robot"]) == 0.5
    out["loss"].backward()
    assert vla.vlm.state_encoder.net[0].weight.grad.abs().sum() > 0
    trainer = Trainer(TrainerConfig(steps=3, batch_size=6, out_dir=str(tmp_path / "run"), progress=False))
    result = trainer.fit(
        model, mix, collate_fn=collate, sample_weights=mix.sample_weights(schedule.weights_at(0))
    )
    assert result.status == "done" and result.step == 3

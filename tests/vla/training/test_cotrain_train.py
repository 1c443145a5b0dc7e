"""VQA co-training through the real `vla train` command: a synthetic colour world where the action depends
on the image colour (robot store) and colour questions about the same images (LLaVA JSON). One tiny VLA
learns both; batches hold the configured shares; a schedule changes them mid-run; a killed run resumes bit
for bit; the checkpoint answers through `vla eval-vqa` (with the task tag it was trained with)."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from vla.cli import main as cli
from vla.commands.train import load_config
from vla.data import synthetic
from vla.data.store import EpisodeStore

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 50), "blue": (30, 70, 230)}
ACTION_OF = {"red": -0.5, "green": 0.0, "blue": 0.5}  # every action dim; only the image tells which


def _image(rgb, rng, size=16):
    """A flat colour with +-12 noise per pixel: uint8 [size, size, 3]."""
    noise = rng.integers(-12, 13, (size, size, 3))
    return np.clip(np.asarray(rgb)[None, None] + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def colour_world(tmp_path_factory):
    """(store path, VQA train JSON, VQA test JSON): 9 episodes (3 per colour), 30 VQA records."""
    root = tmp_path_factory.mktemp("colour_world")
    rng = np.random.default_rng(0)
    feats = synthetic.features(16, 16)
    store = EpisodeStore.create(root / "robot.zarr", feats, fps=10)
    names = list(COLOURS)
    for e in range(9):
        colour = names[e % 3]
        ep = synthetic.episode(feats, 8, e)
        ep["images/front"] = np.stack([_image(COLOURS[colour], rng) for _ in range(8)])  # [T,16,16,3]
        act = np.full((8, 7), ACTION_OF[colour], np.float32)
        act[:, 6] = 1.0 if colour == "red" else 0.0  # gripper-like: exactly two values
        ep["action"] = act
        store.append_episode(ep, {"instruction": "do the colour thing", "task": "pick"})
    store.close()
    (root / "images").mkdir()
    sets = {}
    for split, n in (("train", 24), ("test", 9)):
        recs = []
        for i in range(n):
            colour = names[i % 3]
            rel = f"images/{split}_{i}.png"
            Image.fromarray(_image(COLOURS[colour], rng)).save(root / rel)
            recs.append(
                {
                    "id": f"{split}-{i}",
                    "image": rel,
                    "question_type": "colour",
                    "conversations": [
                        {"from": "human", "value": "<image>\nWhat colour is the picture?"},
                        {"from": "gpt", "value": colour},
                    ],
                }
            )
        sets[split] = root / f"vqa_{split}.json"
        sets[split].write_text(json.dumps(recs))
    return root / "robot.zarr", sets["train"], sets["test"]


def _train(world, out, *extra):
    store, vqa_train, _ = world
    before = torch.get_num_threads()
    try:
        return cli(
            [
                "train",
                str(store),
                f"out={out}",
                "model=tiny",
                "cameras=[front]",
                "val_episodes=3",
                "threads=1",
                "trainer.progress=false",
                "trainer.log_every=1",
                "trainer.warmup_steps=5",
                "+data@cotrain=vqa_cotrain",
                f"cotrain.vqa.0.source.path={vqa_train}",
                *extra,
            ]
        )
    finally:
        torch.set_num_threads(before)


def _log(out, split="train"):
    lines = (out / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("split") == split]


def test_one_vla_learns_actions_and_vqa_at_once(colour_world, tmp_path, capsys):
    """Thresholds: the action tokens of the 3 held-out episodes are one of 3 colour-coded bins per dim (a
    model that ignores the image is right on at most 1/3 of them; 6 of 7 dims are ~uniformly split), and
    VQA accuracy on 9 unseen images is >= 8/9 where an image-blind answer prior scores 1/3."""
    out = tmp_path / "run"
    code = _train(colour_world, out, "trainer.steps=120", "trainer.batch_size=12", "trainer.lr=3e-3")
    assert code == 0
    assert "co-training: robot" in capsys.readouterr().out
    logs = _log(out)
    assert {"loss_robot", "loss_vqa", "share_robot", "share_vqa"} <= set(logs[-1])
    assert all(r["share_robot"] == 0.5 for r in logs)  # stratified: exactly half of every batch
    val = _log(out, "val")[-1]
    assert val["action_acc"] >= 0.8, val
    ckpt = out / "checkpoints" / "step_00000120"
    res = tmp_path / "vqa"
    assert cli(["eval-vqa", str(colour_world[2]), f"checkpoint={ckpt}", f"out={res}", "progress=false"]) == 0
    scores = json.loads((res / "vqa_results.json").read_text())
    assert scores["accuracy"] >= 8 / 9, scores
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["train"]["cotrain"]["vqa"][0]["name"] == "vqa"  # eval-vqa's task=auto reads the tag


def test_schedule_changes_the_sampled_shares_mid_run(colour_world, tmp_path):
    knots = "[{step: 0, weights: {robot: 1, vqa: 1}}, {step: 4, weights: {robot: 3, vqa: 1}}]"
    code = _train(
        colour_world,
        tmp_path,
        "trainer.steps=8",
        "trainer.batch_size=8",
        f"cotrain.schedule={knots}",
        "cotrain.interpolate=step",
        "cotrain.vqa.0.loss_weight=0.5",
    )
    assert code == 0
    shares = [(r["step"], r["share_robot"]) for r in _log(tmp_path)]
    assert shares == [(s, 0.5) for s in range(1, 5)] + [(s, 0.75) for s in range(5, 9)]


def test_mixture_proportions_without_stratification(colour_world, tmp_path):
    """Multinomial batches (stratified=false): over 60 batches of 10 the robot share is 0.75 +- 0.06
    (binomial std of the mean share is 0.018)."""
    code = _train(
        colour_world,
        tmp_path,
        "trainer.steps=60",
        "trainer.batch_size=10",
        "cotrain.stratified=false",
        "cotrain.robot_weight=3.0",
        "trainer.lr=1e-5",
    )
    assert code == 0
    shares = [r["share_robot"] for r in _log(tmp_path)]
    assert len(shares) == 60 and len(set(shares)) > 1
    assert abs(np.mean(shares) - 0.75) < 0.06


def test_killed_cotraining_run_resumes_bit_for_bit(colour_world, tmp_path):
    knots = "[{step: 0, weights: {robot: 1, vqa: 1}}, {step: 6, weights: {robot: 1, vqa: 3}}]"
    common = ["trainer.batch_size=8", "trainer.save_every=3", f"cotrain.schedule={knots}"]
    assert _train(colour_world, tmp_path / "full", "trainer.steps=6", *common) == 0
    # a run killed after its step-3 checkpoint: the same directory without the step-6 checkpoint
    shutil.copytree(tmp_path / "full", tmp_path / "cut")
    shutil.rmtree(tmp_path / "cut" / "checkpoints" / "step_00000006")
    assert _train(colour_world, tmp_path / "cut", "trainer.steps=6", "trainer.resume=true", *common) == 0
    a = load_file(str(tmp_path / "full" / "checkpoints" / "step_00000006" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "checkpoints" / "step_00000006" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _log(tmp_path / "full") == _log(tmp_path / "cut")


def test_bad_cotrain_config_is_a_clear_error(colour_world, tmp_path, capsys):
    assert _train(colour_world, tmp_path, "cotrain.vqa.0.source.path=/nowhere/vqa.json") == 1
    assert "/nowhere/vqa.json" in capsys.readouterr().err
    assert _train(colour_world, tmp_path, "cotrain.interpolate=cubic") == 2  # checked with the arguments
    assert "interpolate" in capsys.readouterr().err
    knots = "[{step: 0, weights: {robot: 1, web: 1}}]"
    assert _train(colour_world, tmp_path, f"cotrain.schedule={knots}") == 1
    assert "schedule names" in capsys.readouterr().err


def test_cotrained_checkpoint_acts_in_the_simulator_and_answers(colour_world, tmp_path):
    """A co-trained VLA with the simulator's cameras (static + wrist) and state: `vla eval` runs it closed
    loop on the held-out-concept task and `vla eval-vqa` on questions, from the same checkpoint."""
    from vla.core.types import FeatureSpec, FeatureType

    feats = synthetic.features(16, 16)
    cams = {f"images/{c}": feats["images/front"] for c in ("static", "wrist")}
    feats = {**cams, "state": feats["state"], "action": FeatureSpec(FeatureType.ACTION, (7,), "float32")}
    store = EpisodeStore.create(tmp_path / "sim.zarr", feats, fps=10)
    for e in range(3):
        store.append_episode(
            synthetic.episode(feats, 6, e), {"instruction": "lift the red cube", "task": "pick"}
        )
    store.close()
    _, vqa_train, vqa_test = colour_world
    code = cli(
        [
            "train",
            str(tmp_path / "sim.zarr"),
            f"out={tmp_path / 'run'}",
            "model=tiny",
            "val_episodes=0",
            "threads=1",
            "trainer.steps=2",
            "trainer.batch_size=4",
            "trainer.progress=false",
            "+data@cotrain=vqa_cotrain",
            f"cotrain.vqa.0.source.path={vqa_train}",
        ]
    )
    assert code == 0
    run = tmp_path / "run"
    ev = tmp_path / "eval"
    args = ["tasks=[pick_concepts]", "split=train", "episodes=1", "env.image_size=32", "references=[]"]
    assert cli(["eval", f"checkpoint={run}", *args, "progress=false", f"out={ev}"]) == 0
    results = json.loads((ev / "results.json").read_text())
    episode = results["episodes"][0]
    assert episode["task"] == "pick_concepts" and episode["error"] is None and episode["length"] > 0
    ckpt = run / "checkpoints" / "step_00000002"
    assert (
        cli(["eval-vqa", str(vqa_test), f"checkpoint={ckpt}", f"out={tmp_path / 'vqa'}", "progress=false"])
        == 0
    )
    preds = (tmp_path / "vqa" / "predictions.jsonl").read_text().splitlines()
    assert len(preds) == 9


def test_bad_vqa_records_raise_naming_file_and_sample_or_are_skipped(colour_world, tmp_path, capsys):
    _, vqa_train, _ = colour_world
    recs = json.loads(vqa_train.read_text())
    recs.append({**recs[0], "id": "broken", "image": "images/none.png"})
    recs.append({**recs[1], "id": "mute", "conversations": recs[1]["conversations"][:1]})
    bad = vqa_train.parent / "vqa_bad.json"
    bad.write_text(json.dumps(recs))
    args = ["trainer.steps=1", "trainer.batch_size=4", f"cotrain.vqa.0.source.path={bad}"]
    assert _train(colour_world, tmp_path / "raise", *args) == 1
    err = capsys.readouterr().err
    assert "vqa_bad.json: sample broken: missing image" in err and "none.png" in err
    assert _train(colour_world, tmp_path / "skip", *args, "cotrain.vqa.0.source.on_error=skip") == 0
    assert "2 samples skipped (1 missing image, 1 no answer turn)" in capsys.readouterr().out


def test_transfer_presets_differ_only_by_cotraining():
    robot = load_config(["+experiment=transfer_robot"])
    cot = load_config(["+experiment=transfer_cotrain"])
    assert robot.cotrain is None and cot.cotrain is not None
    assert cot.cotrain.robot_weight == cot.cotrain.vqa[0].weight  # RT-2: half of every batch is robot data
    same = ("model", "data", "cameras", "chunk_len", "tokenizer", "prompt", "val_episodes")
    assert all(getattr(robot, k) == getattr(cot, k) for k in same)
    assert robot.out != cot.out and (robot.trainer.out_dir, cot.trainer.out_dir) == (robot.out, cot.out)
    assert dataclasses.replace(robot.trainer, out_dir="") == dataclasses.replace(cot.trainer, out_dir="")

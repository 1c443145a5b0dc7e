"""`vla demo` end to end at toy size: collect -> train -> eval, its summary, plot and resume."""

import json

import pytest

from vla.commands import demo
from vla.core.config import compose, to_dataclass
from vla.data.store import EpisodeStore


def _argv(out):
    return [
        "episodes=3",
        "num_envs=1",
        "steps=4",
        # the default preset's model (FiLM conv on the frozen MiniLM's reading of the instruction,
        # continuous head, no state) plus toy-size settings
        'train=["model=tiny_vla_minilm_only","action_head=l1","use_state=false","trainer.save_every=2",'
        '"trainer.progress=false","val_episodes=1","trainer.batch_size=8","trainer.warmup_steps=1",'
        '"aux_weight=1.0","colour_swap=[[red,yellow],[green,purple],[blue,orange]]"]',
        "aux=true",  # the stores record aux/scene, the auxiliary target of aux_weight
        "colour_masks=true",  # and colours/<cam>, what colour_swap recolours
        "eval_episodes=1",
        "references=[expert]",
        f"out={out}",
    ]


def test_demo_collects_trains_evaluates_and_resumes(tmp_path):
    out = tmp_path / "demo"
    assert demo.main(_argv(out)) == 0
    summary = json.loads((out / "summary.json").read_text())
    results = json.loads((out / "eval" / "results.json").read_text())
    assert summary["tasks"] == ["pick_colour"] and summary["collected"][0]["episodes"] == 3
    # The summary, the eval's results.json and its report agree.
    vla_row = summary["success"]["vla"]["pick_colour"]
    assert vla_row["successes"] == results["per_policy"]["vla"]["tasks"]["pick_colour"]["successes"]
    assert summary["success"]["expert"]["pick_colour"]["successes"] == 1  # the reference succeeds
    assert "pick_colour" in (out / "eval" / "report.md").read_text()
    # The language check runs by default; the loss plot gets a validation curve (val_points passes).
    assert summary["language"]["pick_colour"]["episodes"] + summary["language"]["pick_colour"]["skipped"] == 1
    assert "## Language check" in (out / "eval" / "report.md").read_text()
    logged = [json.loads(x) for x in (out / "train" / "log.jsonl").read_text().splitlines() if x]
    assert len([r for r in logged if r["split"] == "val"]) >= 2
    assert (out / "loss.png").stat().st_size > 1000
    assert (out / "train" / "checkpoints" / "step_00000004" / "model.safetensors").exists()
    assert "trainer.warmup_steps=1" in summary["train_command"]  # extra `vla train` overrides pass through
    config = json.loads((out / "train" / "checkpoints" / "step_00000004" / "config.json").read_text())
    assert config["vla"]["action_head"] == "l1" and config["vla"]["processor"]["use_state"] is False
    assert config["vla"]["aux_dim"] == 6  # the auxiliary head, trained on the stores' aux/scene
    feats = EpisodeStore.open(out / "data" / "pick_colour.zarr").features
    assert "aux/scene" in feats and {"colours/static", "colours/wrist"} <= set(feats)
    assert config["train"]["colour_swap"][0] == ["red", "yellow"]
    # A second run keeps the complete store and resumes training at its last step (no new steps).
    assert demo.main(_argv(out)) == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["collected"][0]["kept"] is True
    steps = [json.loads(x)["step"] for x in (out / "train" / "log.jsonl").read_text().splitlines() if x]
    assert max(steps) == 4


def test_demo_presets_and_bad_input():
    full = to_dataclass(compose("demo", ["preset=full"]), demo.DemoConfig)
    assert full.tasks == ["pick", "place", "push", "stack"] and full.preset == "full"
    long = to_dataclass(compose("demo", ["preset=long"]), demo.DemoConfig)
    assert long.tasks == full.tasks and long.steps > full.steps and long.episodes > full.episodes
    assert full.language_episodes == long.language_episodes == 20 and full.eval_episodes == 50
    assert "language_episodes=20" in demo.eval_overrides(full)
    default = to_dataclass(compose("demo", []), demo.DemoConfig)
    assert default.tasks == ["pick_colour"] and default.eval_episodes >= 50
    from vla.commands.train import load_config

    trained = load_config(demo.train_overrides(default))  # the preset's `vla train` command composes
    assert trained.action_head == "l1" and not trained.use_state and trained.model.vision.hf["film_dim"] == 64
    te = trained.model.text_encoder  # the instruction through the pretrained MiniLM alone
    assert (te.name, te.pretrained, te.exclusive, trained.model.film_condition) == (
        "minilm",
        "package:minilm",
        True,
        "text_encoder",
    )
    multi = load_config(demo.train_overrides(full))  # multi-task: weight average, the 128-wide LM at 5e-4
    assert (multi.trainer.ema_decay, multi.trainer.lr, multi.model.lm.hf["hidden_size"]) == (0.999, 5e-4, 128)
    assert multi.model.text_encoder.exclusive and trained.model.lm.hf["hidden_size"] == 64
    longer = load_config(demo.train_overrides(long))  # preset=long: the 64-wide LM at 1e-3 (fits 60 min)
    assert (longer.trainer.ema_decay, longer.trainer.lr, longer.model.lm.hf["hidden_size"]) == (0.999, 1e-3, 64)
    argv = demo.train_overrides(full)
    assert argv[0].endswith("pick.zarr") and any(a.startswith("mixture=") and "stack.zarr" in a for a in argv)
    assert any(a == f"trainer.val_every={default.steps // 12}" for a in demo.train_overrides(default))
    with pytest.raises(ValueError, match="val_points"):
        demo.run_demo(to_dataclass(compose("demo", ["val_points=-1"]), demo.DemoConfig))
    with pytest.raises(ValueError, match="tasks"):
        demo.run_demo(to_dataclass(compose("demo", ["tasks=[nope]"]), demo.DemoConfig))

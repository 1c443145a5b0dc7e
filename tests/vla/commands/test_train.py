"""`vla train` bad input fails before the first step with a clear message; the composed config reaches the
trainer and the checkpoint, and every TrainerConfig field is settable from the command line (mixture
weights: tests/vla/data/test_mixture.py)."""

import dataclasses
import json
import re
import typing

import numpy as np
import pytest
import torch

from vla.cli import main as cli
from vla.commands.train import load_config
from vla.models.vla import VLA
from vla.training.trainer import FreezePhase, TrainerConfig


@pytest.fixture
def store(tiny_train_store):
    return tiny_train_store


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
        (["state_parts=[gripper_width,elbow]"], "state_parts must name .*gripper_width"),
        (["use_state=false", "state_parts=[gripper_width]"], "use_state=false"),
        (["early_frames=-1"], "early_frames must be >= 0"),
        (["early_frames=2", "early_weight=0"], "early_weight > 0"),
        (["motion_weight=-1"], "motion_weight must be >= 0"),
    ],
)
def test_bad_input_fails_before_training(store, tmp_path, capsys, overrides, message):
    """Every argument check comes before anything is written: one line on stderr, exit code 2."""
    out = tmp_path / "run"
    code = cli(["train", str(store), f"out={out}", "cameras=[front]", "trainer.steps=2", *overrides])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vla train: ") and "error:" not in err[0], err
    assert re.search(message, err[0]), err
    assert not out.exists()


def test_missing_store_is_one_line_exit_2(tmp_path, capsys):
    assert cli(["train", str(tmp_path / "none.zarr"), f"out={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"vla train: training store not found: {tmp_path / 'none.zarr'} (collect one: vla collect "
        f"out={tmp_path / 'none.zarr'})"
    ]
    assert not (tmp_path / "run").exists()


def test_a_run_directory_is_never_clobbered(store, tmp_path, capsys):
    """A directory holding another run's checkpoints is refused (one line naming it and both options,
    exit 2, nothing touched); trainer.resume=true continues it; overwrite=true starts afresh, deleting
    the old run's checkpoints and log first; asking for both is refused."""
    torch.set_num_threads(1)
    run = ["trainer.batch_size=4", "val_episodes=1", "model.vision.image_size=16"]
    assert _train(store, tmp_path, "trainer.steps=3", *run) == 0
    old = tmp_path / "checkpoints" / "step_00000003"
    before = (old / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert _train(store, tmp_path, "trainer.steps=2", *run) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path) in err[0] and "step_00000003" in err[0], err
    assert "trainer.resume=true" in err[0] and "overwrite=true" in err[0]
    assert (old / "model.safetensors").read_bytes() == before
    assert _train(store, tmp_path, "trainer.steps=2", "trainer.resume=true", "overwrite=true", *run) == 2
    assert "choose one" in capsys.readouterr().err
    # resume: the finished run continues (nothing left to do at steps=3) and keeps its checkpoint
    assert _train(store, tmp_path, "trainer.steps=3", "trainer.resume=true", *run) == 0
    assert (old / "model.safetensors").read_bytes() == before
    # overwrite: a fresh 2-step run, the old checkpoints and log gone
    assert _train(store, tmp_path, "trainer.steps=2", "overwrite=true", *run) == 0
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith("step_"))
    assert names == ["step_00000002"]
    steps = [json.loads(x)["step"] for x in (tmp_path / "log.jsonl").read_text().splitlines() if x]
    assert steps and max(steps) == 2


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
    t = cfg.trainer
    assert (
        isinstance(t, TrainerConfig)
        and t.lr == 1e-4
        and t.freeze_schedule[0].until == 2
        and t.freeze_schedule[0].train == ["connector"]
    )
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
            "state_parts=[gripper_width]",  # the gripper width as the only proprioception
        )
        == 0
    )
    ck = tmp_path / "checkpoints" / "step_00000003"
    config = json.loads((ck / "config.json").read_text())
    assert config["vla"]["chunk_len"] == 2 and config["train"]["trainer"]["steps"] == 3
    vla = VLA.from_pretrained(ck)  # the checkpoint's processor reads one state feature, its model takes one
    assert vla.processor.cfg.state_parts == ["gripper_width"] and vla.vlm.cfg.state.dim == 1
    assert (ck / "train_state.pt").is_file() and (tmp_path / "log.jsonl").is_file()


def _probe(tp: typing.Any, default: typing.Any, name: str) -> tuple[str, typing.Any]:
    """(command-line value, the value it must give) for a field of type `tp`, unlike `default`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:
        return str(not default).lower(), not default
    if tp is int:
        return str(default + 3), default + 3
    if tp is float:
        return repr(default + 0.25), default + 0.25
    if tp is str:
        return f"probe_{name}", f"probe_{name}"
    if origin is tuple and all(a is float for a in args):
        vals = tuple(d + 0.125 for d in default)
        return "[" + ",".join(map(repr, vals)) + "]", vals
    if origin is list and args[0] is str:
        return f"[probe_{name}]", [f"probe_{name}"]
    if origin is list and dataclasses.is_dataclass(args[0]):
        item = args[0]
        hints = typing.get_type_hints(item)
        sub = {
            f.name: _probe(hints[f.name], getattr(item(), f.name), f.name) for f in dataclasses.fields(item)
        }
        text = "[{" + ", ".join(f"{k}: {v[0]}" for k, v in sub.items()) + "}]"
        return text, [item(**{k: v[1] for k, v in sub.items()})]
    raise AssertionError(f"TrainerConfig.{name}: no command-line probe for type {tp}; add one to _probe")


def test_every_trainer_field_is_settable_from_the_command_line(store):
    """`trainer.<field>=` reaches the TrainerConfig the Trainer gets, for every field (new ones included)."""
    hints = typing.get_type_hints(TrainerConfig)
    default = TrainerConfig()
    probes = {
        f.name: _probe(hints[f.name], getattr(default, f.name), f.name)
        for f in dataclasses.fields(TrainerConfig)
    }
    cfg = load_config([str(store), *(f"trainer.{k}={v}" for k, (v, _) in probes.items())])
    assert isinstance(cfg.trainer, TrainerConfig)
    for name, (_, want) in probes.items():
        assert getattr(cfg.trainer, name) == want, name
    assert cfg.trainer.freeze_schedule and isinstance(cfg.trainer.freeze_schedule[0], FreezePhase)
    # out_dir follows `out` unless set; betas must be a pair
    assert load_config([str(store), "out=elsewhere"]).trainer.out_dir == "elsewhere"
    with pytest.raises(ValueError, match="betas"):
        load_config([str(store), "trainer.betas=[0.9,0.95,0.99]"])


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


def test_early_frames_reach_the_sampler_and_the_checkpoint(store, tmp_path):
    """`early_frames=2 early_weight=5`: build_datasets hands the trainer draw weights in which each
    episode's first two frames weigh five times the others (12-frame episodes: 10 / 20 of the draws), and
    the run trains and records the option."""
    from vla.commands.train import build_datasets, load_config

    torch.set_num_threads(1)
    args = ("trainer.steps=2", "trainer.batch_size=4", "val_episodes=1", "model.vision.image_size=16")
    cfg = load_config([str(store), "cameras=[front]", *args, "early_frames=2", "early_weight=5"])
    train, _, weights, _, _ = build_datasets(cfg)
    early = torch.as_tensor(train.frame_positions() < 2)
    assert weights is not None and float(weights[early].sum()) == pytest.approx(0.5)
    assert build_datasets(load_config([str(store), "cameras=[front]", *args]))[2] is None  # default: uniform
    motion = load_config([str(store), "cameras=[front]", *args, "motion_weight=2"])
    train, _, weights, _, _ = build_datasets(motion)
    size = np.linalg.norm(train.current_actions(("dx", "dy")), axis=1)
    assert float(weights[int(size.argmax())]) > 2 * float(weights[int(size.argmin())])  # the big moves
    assert _train(store, tmp_path, *args, "early_frames=2", "early_weight=5", "motion_weight=1") == 0
    config = json.loads((tmp_path / "checkpoints" / "step_00000002" / "config.json").read_text())
    assert config["train"]["early_frames"] == 2 and config["train"]["early_weight"] == 5
    assert config["train"]["motion_weight"] == 1


def test_instruction_synonyms_rephrase_training_batches(store, tmp_path):
    """`instruction_synonyms=colours`: the run trains and records the option; its collate function hands
    the processor rephrased instructions (vla/data/augment.py) and leaves the samples it got as they were."""
    from vla.commands.train import _AugmentedCollate
    from vla.data.augment import SYNONYM_TABLES, InstructionSynonyms

    torch.set_num_threads(1)
    args = ("trainer.steps=2", "trainer.batch_size=4", "val_episodes=1", "model.vision.image_size=16")
    assert _train(store, tmp_path, *args, "instruction_synonyms=colours", "instruction_synonym_p=1") == 0
    config = json.loads((tmp_path / "checkpoints" / "step_00000002" / "config.json").read_text())
    assert (
        config["train"]["instruction_synonyms"] == "colours" and config["train"]["instruction_synonym_p"] == 1
    )
    seen: list = []
    collate = _AugmentedCollate([InstructionSynonyms(SYNONYM_TABLES["colours"], p=1.0)], seen.extend)
    samples = [{"instruction": "lift the blue cube"}]
    collate(samples)
    assert seen[0]["instruction"] in ("lift the navy cube", "lift the sapphire cube")
    assert samples == [{"instruction": "lift the blue cube"}]


def test_colour_swap_trains_on_a_collected_store_and_needs_its_colour_maps(store, tmp_path, capsys):
    """`vla collect env.colour_masks=true` records colours/<cam> with the palette; `vla train colour_swap=...`
    trains on it, records the option, and hands the processor swapped words and pixels; a store without
    the maps, or a pair that is not in the palette, is one ConfigError line naming colour_swap."""
    from vla.commands.train import _AugmentedCollate
    from vla.data.colour_swap import ColourSwap
    from vla.data.store import EpisodeStore
    from vla.data.windows import WindowDataset, WindowSpec

    torch.set_num_threads(1)
    data = tmp_path / "stack.zarr"
    argv = ["task=stack", "episodes=2", "num_envs=1", "env.image_size=32", "env.cameras=[static]"]
    assert cli(["collect", *argv, "env.depth=false", "env.colour_masks=true", f"out={data}"]) == 0
    st = EpisodeStore.open(data)
    palette = st.features["colours/static"].info["palette"]
    assert [p[0] for p in palette][:6] == ["red", "green", "blue", "yellow", "purple", "orange"]
    pairs = "colour_swap=[[red,yellow],[green,purple],[blue,orange]]"
    run = ["trainer.steps=2", "trainer.batch_size=4", "val_episodes=1", "action_head=l1", "use_state=false"]
    base = ["train", str(data), "cameras=[static]", "trainer.progress=false", "model.vision.image_size=32"]
    assert cli([*base, f"out={tmp_path / 'run'}", *run, pairs, "colour_swap_p=1"]) == 0
    config = json.loads((tmp_path / "run" / "checkpoints" / "step_00000002" / "config.json").read_text())
    assert config["train"]["colour_swap"] == [["red", "yellow"], ["green", "purple"], ["blue", "orange"]]
    # what the processor gets: the first frame's instruction and pixels, swapped
    spec = WindowSpec()
    spec.obs_keys = ["images/static", "colours/static"]
    sample = WindowDataset(data, spec)[0]
    seen: list = []
    _AugmentedCollate(
        [ColourSwap([["red", "yellow"], ["green", "purple"], ["blue", "orange"]], palette, 1.0)], seen.extend
    )([sample])
    partner = dict(red="yellow", yellow="red", green="purple", purple="green", blue="orange", orange="blue")
    assert seen[0]["instruction"] == " ".join(partner.get(w, w) for w in sample["instruction"].split())
    named = sample["colours/static"] > 0
    assert named.any() and (seen[0]["images/static"] != sample["images/static"])[named].any()
    assert torch.equal(seen[0]["images/static"][~named], sample["images/static"][~named])
    capsys.readouterr()
    plain = ["train", str(store), "cameras=[front]", "trainer.steps=2", "model.vision.image_size=16"]
    assert cli([*plain, f"out={tmp_path / 'bad'}", pairs]) == 2
    err = capsys.readouterr().err.strip()
    assert "colours/front" in err and "env.colour_masks=true" in err and "colour_swap" in err
    assert cli([*base, f"out={tmp_path / 'bad2'}", *run, "colour_swap=[[red,pink]]"]) == 2
    assert "'pink' is not a palette colour" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad2").exists()

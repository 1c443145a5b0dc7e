"""The one checkpoint format (vla.models.checkpoint): save -> load gives identical outputs for every encoder
and connector, added tokens and LoRA adapters survive, checkpoints written by the code before this module
existed still load (and the new writer writes the same files), a run directory resolves to its latest
checkpoint, every missing or bad file is one clear error naming it, and the file names appear nowhere else
in library code."""

import ast
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file, save_model
from torch import nn

from action_tokenizers import make_tokenizer
from vla.backbones.config import compose_model_config
from vla.backbones.presets import CONNECTOR_NAMES, VISION_NAMES, tiny_vlm_config
from vla.backbones.text import encode_prompt_answer, pad_batch
from vla.core.io import atomic_write_json
from vla.core.normalizer import Normalizer, compute_stats
from vla.models import VLM
from vla.models.checkpoint import (
    ACTION_TOKENIZER_FILE,
    CONFIG_FILE,
    GOAL_DIFFUSION_TYPE,
    NORMALIZER_FILE,
    PROCESSOR_FILE,
    REQUIRED_FILES,
    TOKENIZER_DIR,
    TRAIN_STATE_FILE,
    VLA_TYPE,
    VLM_TYPE,
    WEIGHTS_FILE,
    Checkpoint,
    CheckpointManager,
    load_weights,
    read_train_state,
    write_checkpoint,
)
from vla.models.goal_diffusion import GoalDiffusion, GoalDiffusionConfig
from vla.models.vla import VLA
from vla.processor import ProcessorConfig

ROOT = Path(__file__).resolve().parents[3]
RNG = np.random.default_rng(0)
ACTIONS = (RNG.standard_normal((200, 7)) * 0.05).astype(np.float32)
NORM = Normalizer(
    {"action": compute_stats(ACTIONS), "state": compute_stats(RNG.standard_normal((200, 15)))},
    {"action": "q99", "state": "meanstd"},
)


def _inputs(model):
    seqs = [encode_prompt_answer(model.tokenizer, "Question: What colour is the cube? Answer:", " red")]
    b = pad_batch(seqs * 2, model.tokenizer.pad_token_id)
    return b["input_ids"], b["attention_mask"], torch.randn(2, 3, 32, 32)


def _roundtrip(model, tmp_path):
    model.eval()
    ids, mask, img = _inputs(model)
    before = model(ids, mask, images=img).logits
    model.save_pretrained(tmp_path / "ckpt")
    loaded = VLM.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(loaded(ids, mask, images=img).logits, before, rtol=0, atol=0)
    return loaded


def _tiny_vla(seed=0):
    torch.manual_seed(seed)
    tok = make_tokenizer("uniform", action_dim=7, chunk_len=1).fit(ACTIONS.reshape(-1, 1, 7))
    cfg = ProcessorConfig(cameras=["static"], state_dim=15)
    return VLA.build(compose_model_config("tiny"), cfg, tok, NORM).eval()


def _tiny_goal_diffusion():
    torch.manual_seed(0)
    return GoalDiffusion(GoalDiffusionConfig(num_points=32, width=32, depth=1, heads=2)).eval()


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("connector", CONNECTOR_NAMES)
@pytest.mark.parametrize("vision", VISION_NAMES)
def test_save_load_identical(tmp_path, vision, connector):
    torch.manual_seed(0)
    _roundtrip(VLM(tiny_vlm_config(vision, connector)), tmp_path)


def test_layout_resolved_config_and_sections(tmp_path):
    torch.manual_seed(0)
    model = VLM(tiny_vlm_config("siglip", "qformer", "gpt2"))
    ids = model.add_tokens(["<act_0>", "<act_1>"])
    model.save_pretrained(tmp_path / "ckpt", extra_config={"vla": {"action_dim": 7}})
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == [CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_DIR]
    ck = Checkpoint.open(tmp_path / "ckpt", model_type=VLM_TYPE)
    assert ck.section("vla") == {"action_dim": 7} and ck.config["format_version"] == 1
    assert ck.section("train") == {}
    assert ck.model_config["lm"]["hf"]["vocab_size"] == len(model.tokenizer)
    assert (
        ck.model_config["vision"]["pretrained"] is None
        and ck.model_config["vision"]["hf"]["hidden_size"] == 32
    )
    loaded = VLM.from_pretrained(tmp_path / "ckpt")
    assert loaded.tokenizer.convert_tokens_to_ids(["<act_0>", "<act_1>"]) == ids


def test_lora_and_freeze_survive_a_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = VLM(tiny_vlm_config("vit", "mlp2x_gelu"))
    model.apply_lora("lm", r=4, alpha=8)
    model.apply_lora("vision", r=2)
    model.set_frozen(["connector"])
    with torch.no_grad():  # make the adapters non-trivial so the test can see them load
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_()
    loaded = _roundtrip(model, tmp_path)
    assert loaded.cfg.lora.keys() == {"lm", "vision"}
    assert loaded.trainable_parameters_by_component()["connector"] == 0


def test_failed_save_leaves_the_old_checkpoint(tmp_path):
    model = VLM(tiny_vlm_config())
    model.save_pretrained(tmp_path / "ckpt")

    class FullDisk:
        def save_pretrained(self, _d):
            raise RuntimeError("disk full")

    bad = dataclasses.replace(model.checkpoint_contents(), text_tokenizer=FullDisk())
    with pytest.raises(RuntimeError, match="disk full"):
        write_checkpoint(tmp_path / "ckpt", bad)
    assert VLM.from_pretrained(tmp_path / "ckpt") is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary directory left


def test_contents_are_checked_before_anything_is_written(tmp_path):
    vla = _tiny_vla()
    full = vla.checkpoint_contents()
    with pytest.raises(ValueError, match=r"lack \['normalizer'\]"):
        write_checkpoint(tmp_path / "a", dataclasses.replace(full, normalizer=None))
    with pytest.raises(ValueError, match=r"may not override the config.json keys \['model_type'\]"):
        write_checkpoint(tmp_path / "b", dataclasses.replace(full, sections={"model_type": "x"}))
    with pytest.raises(ValueError, match="unknown model_type 'nope'"):
        write_checkpoint(tmp_path / "c", dataclasses.replace(full, model_type="nope"))
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------------------- old checkpoints
def _old_vla_write_files(model: VLA, d: Path, extra_config: dict) -> None:
    """VLA.write_files + VLAProcessor.save as they were before vla.models.checkpoint wrote every file
    (git show ebb7a1c:vla/models/vla.py, vla/processor.py), file names and all."""
    p = model.processor
    config = {
        "format": "vla-checkpoint",
        "format_version": 1,
        "model_type": "vla",
        "model": dataclasses.asdict(model.vlm.resolved_config()),
        "vla": {
            "processor": dataclasses.asdict(p.cfg),
            "action_tokenizer": p.action_tokenizer.name,
            "action_dim": p.action_dim,
            "chunk_len": p.chunk_len,
            "action_head": model.action_head_name,
        },
    }
    sd = model.state_dict()
    vlm_sd = {k[len("vlm.") :]: v for k, v in sd.items() if k.startswith("vlm.")}
    vlm_sd.update({k: v for k, v in sd.items() if k.startswith("action_head.")})
    save_file(
        {k: v.detach().cpu().contiguous().clone() for k, v in vlm_sd.items()},
        str(d / "model.safetensors"),
        metadata={"format": "vla-checkpoint"},
    )
    p.text_tokenizer.save_pretrained(str(d / "tokenizer"))
    atomic_write_json(d / "processor.json", p.to_dict())
    p.normalizer.save(d / "normalizer.json")
    p.action_tokenizer.save(d / "action_tokenizer.json")
    atomic_write_json(d / "config.json", {**config, **extra_config})


def test_a_vla_checkpoint_of_the_old_writer_loads_and_the_new_writer_writes_the_same_files(tmp_path):
    vla = _tiny_vla()
    extra = {"train": {"steps": 3, "cotrain": None}}
    old = tmp_path / "old"
    old.mkdir()
    _old_vla_write_files(vla, old, extra)
    new = vla.save_pretrained(tmp_path / "new", extra_config=extra)
    # byte for byte but the weights file, whose header now also records a checksum of its tensor data
    assert {k: v for k, v in _files(old).items() if k != WEIGHTS_FILE} == {
        k: v for k, v in _files(new).items() if k != WEIGHTS_FILE
    }
    old_w, new_w = load_file(str(old / WEIGHTS_FILE)), load_file(str(new / WEIGHTS_FILE))
    assert old_w.keys() == new_w.keys() and all(torch.equal(v, new_w[k]) for k, v in old_w.items())
    back = VLA.from_pretrained(old)
    assert back.state_dict().keys() == vla.state_dict().keys()
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in vla.state_dict().items())
    assert back.processor.to_dict() == vla.processor.to_dict()
    assert back.processor.normalizer.to_dict() == vla.processor.normalizer.to_dict()
    assert back.processor.action_tokenizer.to_dict() == vla.processor.action_tokenizer.to_dict()


def test_a_vlm_checkpoint_of_the_old_writer_loads(tmp_path):
    """The old VLM writer used safetensors' save_model, which stores tied weights once; the new one clones
    them. Both load, to identical logits."""
    torch.manual_seed(0)
    model = VLM(tiny_vlm_config()).eval()  # the tiny llama ties its input and output embeddings
    old = tmp_path / "old"
    old.mkdir()
    save_model(model, str(old / "model.safetensors"), metadata={"format": "vla-checkpoint"})
    model.tokenizer.save_pretrained(str(old / "tokenizer"))
    config = {"format": "vla-checkpoint", "format_version": 1, "model_type": "vlm"}
    atomic_write_json(old / "config.json", {**config, "model": dataclasses.asdict(model.resolved_config())})
    new = model.save_pretrained(tmp_path / "new")
    old_keys, new_keys = set(load_file(str(old / WEIGHTS_FILE))), set(load_file(str(new / WEIGHTS_FILE)))
    assert old_keys < new_keys  # the tied copies
    assert {k: v for k, v in _files(old).items() if k != WEIGHTS_FILE} == {
        k: v for k, v in _files(new).items() if k != WEIGHTS_FILE
    }
    with safe_open(str(new / WEIGHTS_FILE), "pt") as f:
        meta = f.metadata()
    assert len(meta.pop("data_crc32")) == 8 and meta == {"format": "vla-checkpoint"}  # + the data checksum
    ids, mask, img = _inputs(model)
    ref = model(ids, mask, images=img).logits
    for d in (old, new):
        torch.testing.assert_close(VLM.from_pretrained(d)(ids, mask, images=img).logits, ref, rtol=0, atol=0)


def test_an_old_training_run_resumes_and_resolves(tmp_path):
    """The old trainer wrote `step_N/model.safetensors` (no metadata) + train_state.pt and `latest`."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    step = tmp_path / "run" / "checkpoints" / "step_00000004"
    step.mkdir(parents=True)
    save_file({k: v.clone() for k, v in net.state_dict().items()}, str(step / "model.safetensors"))
    torch.save({"step": 4, "consumed_batches": 4, "rng": {"x": torch.ones(2)}}, step / "train_state.pt")
    (tmp_path / "run" / "checkpoints" / "latest").write_text("step_00000004\n")
    manager = CheckpointManager.of_run(tmp_path / "run")
    assert manager.latest() == step and read_train_state(step)["step"] == 4
    fresh = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    load_weights(fresh, step)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), net.state_dict().values()))
    with pytest.raises(FileNotFoundError, match=f"missing {CONFIG_FILE}"):  # weights only: not loadable
        Checkpoint.open(tmp_path / "run")


# --------------------------------------------------------------------------------------- training runs
def test_manager_writes_steps_latest_and_keeps_the_last_k(tmp_path):
    model = VLM(tiny_vlm_config())
    manager = CheckpointManager.of_run(tmp_path / "run", keep_last=2)
    for step in (2, 4, 6):
        manager.save(step, model.checkpoint_contents(extra_config={"train": {"at": step}}), {"step": step})
    assert [p.name for p in manager.step_dirs()] == ["step_00000004", "step_00000006"]
    ck = Checkpoint.open(tmp_path / "run", model_type=VLM_TYPE)  # a run dir: its latest checkpoint
    assert ck.path.name == "step_00000006" and ck.section("train") == {"at": 6}
    assert read_train_state(ck.path) == {"step": 6}
    assert sorted(p.name for p in ck.path.iterdir()) == [
        CONFIG_FILE,
        WEIGHTS_FILE,
        TOKENIZER_DIR,
        TRAIN_STATE_FILE,
    ]
    with pytest.raises(FileNotFoundError, match=f"missing {TRAIN_STATE_FILE}: it cannot be resumed"):
        read_train_state(tmp_path)
    empty = tmp_path / "empty"
    (empty / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        Checkpoint.open(empty)


# --------------------------------------------------------------------------------------- clear errors
@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One checkpoint of each model type."""
    root = tmp_path_factory.mktemp("written")
    return {
        VLM_TYPE: VLM(tiny_vlm_config()).save_pretrained(root / VLM_TYPE),
        VLA_TYPE: _tiny_vla().save_pretrained(root / VLA_TYPE),
        GOAL_DIFFUSION_TYPE: _tiny_goal_diffusion().save_pretrained(root / GOAL_DIFFUSION_TYPE),
    }


LOADERS = {
    VLM_TYPE: VLM.from_pretrained,
    VLA_TYPE: VLA.from_pretrained,
    GOAL_DIFFUSION_TYPE: GoalDiffusion.from_pretrained,
}
CASES = [(t, f) for t, files in REQUIRED_FILES.items() for f in (CONFIG_FILE, *files)]


@pytest.mark.parametrize(("model_type", "name"), CASES)
def test_a_missing_file_is_one_error_naming_it(written, tmp_path, model_type, name):
    ck = tmp_path / "ck"
    shutil.copytree(written[model_type], ck)
    target = ck / name
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(FileNotFoundError, match=rf"checkpoint {ck}.* is missing {name}/?$"):
        LOADERS[model_type](ck)


@pytest.mark.parametrize(
    ("name", "error"),
    [
        (CONFIG_FILE, "checkpoint config .*config.json is not valid JSON"),
        (PROCESSOR_FILE, "processor config .*processor.json is not valid JSON"),
        (NORMALIZER_FILE, "normalizer file .*normalizer.json is not valid JSON"),
        (ACTION_TOKENIZER_FILE, "action tokenizer file .*action_tokenizer.json is not valid JSON"),
        (WEIGHTS_FILE, "model.safetensors: not a readable safetensors file"),
    ],
)
def test_a_bad_file_is_one_error_naming_it(written, tmp_path, name, error):
    ck = tmp_path / "ck"
    shutil.copytree(written[VLA_TYPE], ck)
    (ck / name).write_text("{not json")
    with pytest.raises(ValueError, match=error):
        VLA.from_pretrained(ck)


def test_bad_configs_give_clear_errors(written, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint directory not found"):
        VLM.from_pretrained(tmp_path / "none")
    (tmp_path / "stray").mkdir()
    with pytest.raises(FileNotFoundError, match="neither a checkpoint directory"):
        Checkpoint.open(tmp_path / "stray")
    v = tmp_path / "v"
    shutil.copytree(written[VLM_TYPE], v)
    cfg = json.loads((v / CONFIG_FILE).read_text())
    for key, value, error in (
        ("format_version", 99, "format_version 99 is not supported"),
        ("format", "other", "not a vla-checkpoint config"),
        ("model_type", "robot", "unknown model_type 'robot'"),
        ("model", [], "key 'model' must be a dict"),
    ):
        (v / CONFIG_FILE).write_text(json.dumps({**cfg, key: value}))
        with pytest.raises(ValueError, match=error):
            VLM.from_pretrained(v)
    (v / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="model_type is 'vlm', expected 'vla'"):
        VLA.from_pretrained(v)
    deeper = json.loads(json.dumps(cfg))
    deeper["model"]["lm"]["hf"]["num_hidden_layers"] = 3
    (v / CONFIG_FILE).write_text(json.dumps(deeper))
    with pytest.raises(ValueError, match="model.safetensors: weights do not fit"):
        VLM.from_pretrained(v)
    deeper["model"]["vision"]["colour"] = 1
    (v / CONFIG_FILE).write_text(json.dumps(deeper))
    with pytest.raises(ValueError, match="unknown keys \\['colour'\\]"):
        VLM.from_pretrained(v)


# --------------------------------------------------------------------------------------- one module
FILE_NAMES = {
    CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_DIR + "/", PROCESSOR_FILE, NORMALIZER_FILE, ACTION_TOKENIZER_FILE,
    TRAIN_STATE_FILE,
}  # fmt: skip
# Hugging Face's own pretrained directories (config.json + model.safetensors), not this format
HF_FORMAT = {"vla/backbones/vision.py", "vla/backbones/weights.py", "vla/backbones/gguf.py"}


def test_file_names_are_constants_of_the_checkpoint_module_only():
    found = []
    for pkg in ("vla", "policies", "robot_io", "sim", "action_tokenizers"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            if rel in ("vla/models/checkpoint.py", *HF_FORMAT) or "ros2_pkg" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if node.value in FILE_NAMES or node.value.strip("/") in FILE_NAMES:
                        found.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert not found, "checkpoint file names outside vla/models/checkpoint.py:\n" + "\n".join(found)

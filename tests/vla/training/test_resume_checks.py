"""Checkpoints and resume under faults (issue 21, item 5): a truncated or corrupt latest checkpoint of a
real run falls back to the newest intact one with a one-line warning (and the resumed run still matches the
uninterrupted one bit for bit), a `latest` pointer that leads out of the run is refused, and
`trainer.resume=true` with other optimiser, store or model settings is one error line naming each change
unless `trainer.resume_force=true` (then the new optimiser settings apply)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vla.models.checkpoint import (
    TRAIN_STATE_FILE,
    WEIGHTS_FILE,
    Checkpoint,
    CheckpointManager,
    checkpoint_problem,
    resolve_checkpoint,
)
from vla.training.optim import warmup_cosine_factor
from vla.training.trainer import Trainer, TrainerConfig, _comparable, resume_changes

sys.path.insert(0, str(Path(__file__).parent))
from toy import ToyData, ToyModel  # noqa: E402


def _cfg(out: Path, **kw) -> TrainerConfig:
    base = dict(steps=8, batch_size=16, lr=3e-3, warmup_steps=2, log_every=1, save_every=4, keep_last=2)
    return TrainerConfig(**{**base, "out_dir": str(out), "progress": False, **kw})


def _fit(out: Path, **kw):
    torch.manual_seed(0)
    return Trainer(_cfg(out, **kw)).fit(ToyModel(), ToyData())


def _rows(out: Path) -> list[dict]:
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == "train"]


@pytest.fixture(scope="module")
def run8(tmp_path_factory):
    """A real 8-step toy run with checkpoints at steps 4 and 8."""
    out = tmp_path_factory.mktemp("run8")
    assert _fit(out).status == "done"
    return out


@pytest.mark.parametrize("damage", ["truncate_weights", "garbage_weights", "truncate_train_state"])
def test_a_damaged_latest_checkpoint_falls_back_with_one_warning(run8, tmp_path, capsys, damage):
    run = tmp_path / "run"
    shutil.copytree(run8, run)
    step8 = run / "checkpoints" / "step_00000008"
    if damage == "truncate_weights":
        with open(step8 / WEIGHTS_FILE, "r+b") as f:
            f.truncate((step8 / WEIGHTS_FILE).stat().st_size // 2)
    elif damage == "garbage_weights":
        (step8 / WEIGHTS_FILE).write_bytes(b"\xff" * 64)
    else:
        with open(step8 / TRAIN_STATE_FILE, "r+b") as f:
            f.truncate(100)
    assert checkpoint_problem(step8) is not None
    capsys.readouterr()
    assert CheckpointManager.of_run(run).latest().name == "step_00000004"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: checkpoint step_00000008 ("), err
    assert err[0].endswith("is damaged; using step_00000004"), err
    assert resolve_checkpoint(run).name == "step_00000004"
    # resuming goes on from step 4 and rewrites step 8 exactly as the uninterrupted run wrote it
    result = _fit(run, resume=True)
    assert result.step == 8 and checkpoint_problem(step8) is None
    a = load_file(str(run8 / "checkpoints" / "step_00000008" / WEIGHTS_FILE))
    b = load_file(str(step8 / WEIGHTS_FILE))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_damaged_vla_checkpoint_falls_back_and_loads(tmp_path, capsys):
    """The same through Checkpoint.open / VLA.from_pretrained, which `vla eval checkpoint=RUN` uses."""
    from action_tokenizers import make_tokenizer
    from vla.backbones.config import compose_model_config
    from vla.core.normalizer import Normalizer, compute_stats
    from vla.models.vla import VLA
    from vla.processor import ProcessorConfig

    acts = torch.randn(64, 7).numpy() * 0.05
    norm = Normalizer({"action": compute_stats(acts), "state": compute_stats(torch.randn(64, 15).numpy())},
                      {"action": "q99", "state": "meanstd"})  # fmt: skip
    tok = make_tokenizer("uniform", action_dim=7, chunk_len=1).fit(acts.reshape(-1, 1, 7))
    torch.manual_seed(0)
    model = VLA.build(
        compose_model_config("tiny"), ProcessorConfig(cameras=["static"], state_dim=15), tok, norm
    )
    manager = CheckpointManager.of_run(tmp_path)
    for step in (1, 2):
        manager.save(step, model.checkpoint_contents(), {"step": step})
    weights = tmp_path / "checkpoints" / "step_00000002" / WEIGHTS_FILE
    with open(weights, "r+b") as f:
        f.truncate(1000)
    with pytest.raises(ValueError, match=r"model.safetensors: not a readable safetensors file: truncated"):
        Checkpoint.open(weights.parent)  # a checkpoint named directly: one error, no fallback
    assert Checkpoint.open(tmp_path).path.name == "step_00000001"
    assert "step_00000002 (model.safetensors: truncated" in capsys.readouterr().err
    VLA.from_pretrained(tmp_path)


@pytest.mark.parametrize("pointer", ["../../other/checkpoints/step_00000004", "/etc", "step_00000012"])
def test_a_latest_pointer_out_of_the_run_is_refused(run8, tmp_path, pointer):
    run, other = tmp_path / "run", tmp_path / "other"
    shutil.copytree(run8, run)
    shutil.copytree(run8, other)
    if pointer == "step_00000012":  # a step directory that is a link into another run
        (run / "checkpoints" / pointer).symlink_to(other / "checkpoints" / "step_00000004")
    (run / "checkpoints" / "latest").write_text(pointer + "\n")
    with pytest.raises(ValueError, match="not a step directory of this run .* refusing to follow it"):
        CheckpointManager.of_run(run).latest()
    with pytest.raises(ValueError, match="refusing"):
        _fit(run, resume=True)


def test_resume_with_other_settings_names_them_and_needs_force(run8, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(run8, run)
    with pytest.raises(ValueError) as e:
        _fit(run, resume=True, steps=12, lr=1e-2, batch_size=8, log_every=5)
    msg = str(e.value)
    assert "\n" not in msg and "step_00000008 was trained with other settings" in msg
    assert "trainer.batch_size 16 -> 8; trainer.lr 0.003 -> 0.01)" in msg and "resume_force=true" in msg
    assert CheckpointManager.of_run(run).latest().name == "step_00000008"  # nothing written
    capsys.readouterr()
    result = _fit(run, resume=True, steps=12, lr=1e-2, resume_force=True)  # steps may change: no force
    assert result.step == 12
    out = capsys.readouterr().out
    assert "[train] warning: resuming" in out and "trainer.lr 0.003 -> 0.01" in out
    lr = {r["step"]: r["lr"] for r in _rows(run)}
    for s in (9, 12):  # the new learning rate, on the new 12-step schedule
        assert lr[s] == pytest.approx(1e-2 * warmup_cosine_factor(s, 2, 12, 0.1), rel=1e-9)
    _fit(run, resume=True, steps=14, lr=1e-2)  # the forced settings are the run's settings now


def test_the_compared_settings_of_a_vla_train_config():
    """What `vla train` writes into config.json: the store, model and optimiser settings count; where the
    run lives, how many steps and how it logs do not; a key only one code version knows is no change."""
    saved = {
        "format": "vla-checkpoint", "model_type": "vla", "model": {"d_model": 64},
        "vla": {"chunk_len": 1},
        "train": {"data": {"path": "outputs/demos/pick.zarr", "n_obs": 1}, "out": "outputs/a", "threads": 1,
                  "cameras": ["static"], "trainer": {"lr": 1e-3, "steps": 100, "out_dir": "outputs/a"}},
    }  # fmt: skip
    current = json.loads(json.dumps(saved))
    current["train"].update(out="outputs/b", threads=2, new_option=True)
    current["train"]["trainer"].update(steps=200, out_dir="outputs/b", progress=False)
    assert resume_changes(_comparable(saved), _comparable(current)) == []
    current["train"]["data"]["path"] = "outputs/demos/./other.zarr"
    current["train"]["trainer"]["lr"] = 3e-4
    current["model"]["d_model"] = 128
    current["train"]["cotrain"] = {"vqa": {"weight": 1}}
    saved["train"]["cotrain"] = None
    assert resume_changes(_comparable(saved), _comparable(current)) == [
        "data.path outputs/demos/pick.zarr -> outputs/demos/other.zarr",
        "model.d_model 64 -> 128",
        "trainer.lr 0.001 -> 0.0003",
        "cotrain null -> (other settings)",
    ]
    assert {f.name for f in dataclasses.fields(TrainerConfig)} >= {"resume", "resume_force"}

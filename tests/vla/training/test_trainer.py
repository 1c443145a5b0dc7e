"""The generic trainer on a toy model: learning, bit-exact kill/resume, NaN stop, freeze schedule,
keep-last-k, and DDP equivalence under a real 2-process torchrun (gloo, CPU)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vla.models.checkpoint import WEIGHTS_FILE, CheckpointManager, read_train_state
from vla.training.sampler import ResumableBatchSampler
from vla.training.trainer import FreezePhase, Trainer, TrainerConfig

sys.path.insert(0, str(Path(__file__).parent))
from toy import ToyData, ToyModel  # noqa: E402

TOY = str(Path(__file__).parent / "toy.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _train_rows(out: Path) -> list[dict]:
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == "train"]


def _run(*args, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [sys.executable, TOY, *map(str, args)], env=ENV, capture_output=True, text=True, timeout=120
    )
    if check:
        assert r.returncode == 0, r.stderr[-2000:]
    return r


def test_learns_writes_logs_plot_and_checkpoints(tmp_path):
    cfg = TrainerConfig(
        steps=60,
        batch_size=32,
        lr=1e-2,
        warmup_steps=5,
        log_every=5,
        save_every=20,
        keep_last=2,
        out_dir=str(tmp_path),
        progress=False,
    )
    result = Trainer(cfg).fit(ToyModel(), ToyData(), val_set=ToyData(64, offset=256))
    rows = _train_rows(tmp_path)
    assert result.status == "done" and result.step == 60
    assert rows[-1]["loss"] < 0.2 * rows[0]["loss"]
    assert (tmp_path / "loss.png").stat().st_size > 1000 and (tmp_path / "tb").is_dir()
    names = [p.name for p in CheckpointManager.of_run(tmp_path).step_dirs()]
    assert names == ["step_00000040", "step_00000060"]  # keep-last-2
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_00000060"
    val = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    val = [r for r in val if r["split"] == "val"]
    assert [r["step"] for r in val] == [60] and val[0]["loss"] == pytest.approx(result.val["loss"])
    assert result.val["loss"] < 0.2 * rows[0]["loss"]  # generalises to held-out samples


def test_kill_and_resume_reproduce_the_uninterrupted_run(tmp_path):
    """SIGKILL mid-run, resume: the loss curve equals the uninterrupted run's bit for bit. EMA is on, so
    this also checks that model.safetensors holds EMA weights while train_state keeps the raw ones."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    _run(full, 14, "--ema", 0.9)
    killed = _run(cut, 14, "--ema", 0.9, "--kill-at", 11, check=False)  # during step 11, after step-8 save
    assert killed.returncode == -9
    assert CheckpointManager.of_run(cut).latest().name == "step_00000008"
    _run(cut, 14, "--ema", 0.9, "--resume")
    a, b = _train_rows(full), _train_rows(cut)
    assert [r["step"] for r in b] == list(range(1, 15))
    assert [r["loss"] for r in a] == [r["loss"] for r in b]  # bit-for-bit, not approximately
    from safetensors.torch import load_file

    last = full / "checkpoints" / "step_00000014"
    state = read_train_state(last)
    deployed = load_file(str(last / WEIGHTS_FILE))
    assert torch.equal(deployed["head.weight"], state["ema"]["head.weight"])
    assert not torch.equal(deployed["head.weight"], state["model_raw"]["head.weight"])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, capsys):
    cfg = TrainerConfig(steps=20, batch_size=16, save_every=4, out_dir=str(tmp_path), progress=False)
    result = Trainer(cfg).fit(ToyModel(nan_at=10), ToyData())
    out = capsys.readouterr().out
    assert result.status == "nan" and result.step == 9
    assert "non-finite loss" in out and "step_00000008" in out
    assert CheckpointManager.of_run(tmp_path).latest().name == "step_00000008"


def test_freeze_schedule_trains_only_named_components(tmp_path):
    model = ToyModel()
    enc0 = [p.detach().clone() for p in model.encoder.parameters()]
    cfg = TrainerConfig(
        steps=6,
        batch_size=16,
        lr=1e-2,
        warmup_steps=0,
        out_dir=str(tmp_path),
        progress=False,
        freeze_schedule=[FreezePhase(until=3, train=["head"])],
    )
    trainer = Trainer(cfg)
    # Stop after the head-only phase: the encoder must not have moved.
    trainer.cfg.steps = 3
    trainer.fit(model, ToyData())
    assert all(torch.equal(a, b) for a, b in zip(enc0, model.encoder.parameters()))
    trainer.cfg.steps, trainer.cfg.resume = 6, True
    trainer.fit(model, ToyData())
    assert not all(torch.equal(a, b) for a, b in zip(enc0, model.encoder.parameters()))
    bad = TrainerConfig(
        steps=2,
        out_dir=str(tmp_path / "bad"),
        progress=False,
        freeze_schedule=[FreezePhase(until=1, train=["nope"])],
    )
    with pytest.raises(ValueError, match="unknown components"):
        Trainer(bad).fit(ToyModel(), ToyData())


def test_sampler_shards_global_batches_and_resumes():
    one = ResumableBatchSampler(20, 8, seed=3)
    r0, r1 = (ResumableBatchSampler(20, 8, seed=3, rank=r, world_size=2) for r in (0, 1))
    it, i0, i1 = iter(one), iter(r0), iter(r1)
    for _ in range(5):  # crosses epoch boundaries (2 full batches per epoch)
        assert next(it) == next(i0) + next(i1)
    resumed = ResumableBatchSampler(20, 8, seed=3)
    resumed.set_position(5)
    assert next(iter(resumed)) == next(it)
    with pytest.raises(ValueError, match="multiple of world size"):
        ResumableBatchSampler(20, 7, world_size=2)


def _torchrun(*args, check: bool = True) -> subprocess.CompletedProcess:
    with socket.socket() as sock:  # a free loopback port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={port}", TOY, *map(str, args)]  # fmt: skip
    env = {**ENV, "GLOO_SOCKET_IFNAME": "lo"}  # loopback only
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_torchrun_two_processes_match_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    # No dropout here: each rank would draw its own mask for its half batch, so no DDP run can match.
    _run(one, 6, "--batch", 16, "--dropout", 0)
    _torchrun(two, 6, "--batch", 16, "--dropout", 0)
    a, b = _train_rows(one), _train_rows(two)
    assert len(a) == len(b) == 6
    for x, y in zip(a, b):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-5, abs=1e-7)


def test_fsdp_two_processes_with_resume_match_one_process(tmp_path):
    """FSDP2 over 2 ranks (gloo, CPU), gradient accumulation 2, both ranks SIGKILLed during step 6 and
    resumed from the step-4 checkpoint (sharded optimiser state round trip): the same losses as one plain
    process; the checkpoint holds the full state dict, which loads into an unsharded model."""
    one, two = tmp_path / "one", tmp_path / "fsdp"
    common = ("--batch", 16, "--dropout", 0, "--accum", 2)
    _run(one, 8, *common)
    killed = _torchrun(two, 8, *common, "--strategy", "fsdp", "--kill-at", 11, check=False)
    assert killed.returncode != 0
    assert CheckpointManager.of_run(two).latest().name == "step_00000004"
    _torchrun(two, 8, *common, "--strategy", "fsdp", "--resume")
    a, b = _train_rows(one), _train_rows(two)
    assert [r["step"] for r in b] == list(range(1, 9))
    for x, y in zip(a, b):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-4, abs=1e-6)
    from safetensors.torch import load_file

    ToyModel().load_state_dict(load_file(str(two / "checkpoints" / "step_00000008" / WEIGHTS_FILE)))
    with pytest.raises(ValueError, match="fsdp"):
        Trainer(TrainerConfig(strategy="fsdp", ema_decay=0.9))


class _SequentialSampler:
    """A positioned batch sampler: micro-batch m is [4m, 4m+1, 4m+2, 4m+3] mod 256 (records positions)."""

    def __init__(self, positions: list[int]):
        self.start, self.positions = 0, positions

    def set_position(self, consumed_batches: int) -> None:
        self.start = consumed_batches
        self.positions.append(consumed_batches)

    def __iter__(self):
        m = self.start
        while True:
            yield [(4 * m + k) % 256 for k in range(4)]
            m += 1


def test_custom_batch_sampler_is_positioned_on_resume(tmp_path):
    """`batch_sampler=` replaces the default sampler; a resumed fit positions it at the consumed count."""
    positions: list[int] = []
    cfg = TrainerConfig(steps=3, batch_size=4, grad_accum=2, out_dir=str(tmp_path), progress=False)
    model = ToyModel()
    r = Trainer(cfg).fit(model, ToyData(), batch_sampler=lambda rank, world: _SequentialSampler(positions))
    assert r.status == "done" and positions == [0]
    cfg.steps, cfg.resume = 5, True
    Trainer(cfg).fit(model, ToyData(), batch_sampler=lambda rank, world: _SequentialSampler(positions))
    assert positions == [0, 6]  # 3 steps x 2 micro-batches consumed before the resume
    with pytest.raises(ValueError, match="sample_weights or batch_sampler"):
        Trainer(cfg).fit(
            model,
            ToyData(),
            sample_weights=torch.ones(256),
            batch_sampler=lambda r, w: _SequentialSampler([]),
        )

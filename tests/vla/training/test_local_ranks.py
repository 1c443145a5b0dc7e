"""`vla train` on a CPU runs data-parallel ranks on this machine (vla.training.distributed.launch_local):
how many ranks auto picks, that the spawned ranks form a real gloo group and report results and errors,
and that two ranks of batch B/2 train the same weights as one process of batch B."""

import os

import pytest
import torch
from safetensors.torch import load_file

from vla.cli import main as cli
from vla.training.distributed import (
    AUTO_RANKS_MIN_STEPS,
    init_distributed,
    launch_local,
    local_world_size,
    wrap_model,
)


def test_auto_picks_one_rank_per_core_that_divides_the_batch():
    long = AUTO_RANKS_MIN_STEPS
    assert local_world_size(0, 32, long, cores=2) == 2
    assert local_world_size(0, 32, long, cores=3) == 2  # 3 does not divide 32
    assert local_world_size(0, 12, long, cores=8) == 3  # at most batch / 4 per rank, and a divisor
    assert local_world_size(0, 32, long, cores=1) == 1
    assert local_world_size(0, 32, long - 1, cores=2) == 1  # a short run stays in one process
    assert local_world_size(3, 33, 1, cores=1) == 3  # an explicit count is taken as it is
    with pytest.raises(ValueError, match="divide the batch"):
        local_world_size(3, 32, long)
    with pytest.raises(ValueError, match=">= 0"):
        local_world_size(-1, 32, long)


def _sum_of_ranks(scale: int) -> dict:
    info = init_distributed("auto", "cpu")
    x = torch.tensor([float(info.rank + 1)])
    torch.distributed.all_reduce(x)
    threads = torch.get_num_threads()
    return {"rank": info.rank, "world": info.world_size, "sum": float(x) * scale, "threads": threads}


def _bad_value() -> None:
    raise ValueError("bad input in a rank")


def _crash() -> None:
    if int(os.environ["RANK"]) == 1:
        os._exit(3)  # a rank that dies without a word
    init_distributed("auto", "cpu")  # rank 0 would wait for it forever: the launcher must stop it
    torch.distributed.barrier()


def test_ranks_form_a_gloo_group_and_rank_zero_returns():
    out = launch_local(_sum_of_ranks, (10,), world=2, threads=1)
    assert out == {"rank": 0, "world": 2, "sum": 30.0, "threads": 1}


def test_a_rank_error_is_raised_in_the_launcher():
    with pytest.raises(ValueError, match="bad input in a rank"):
        launch_local(_bad_value, (), world=2)
    with pytest.raises(RuntimeError, match="exited abnormally"):
        launch_local(_crash, (), world=2)


def _buffer_broadcasts() -> dict:
    """In a 2-rank group: whether DDP broadcasts buffers for a model with and without BatchNorm, and the
    sum over ranks of a BatchNorm buffer set to rank + 1 on each rank after one forward (2: rank 0's
    value reached rank 1; 3: each rank kept its own)."""
    info = init_distributed("auto", "cpu")
    torch.manual_seed(0)
    plain = wrap_model(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2)), info)
    bn_model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    bn = wrap_model(bn_model, info)
    with torch.no_grad():
        bn_model[1].running_mean.fill_(float(info.rank + 1))
    bn.eval()
    bn(torch.zeros(3, 2))  # DDP's forward broadcasts rank 0's buffers first
    total = bn_model[1].running_mean.clone()
    torch.distributed.all_reduce(total)
    return {"plain": plain.broadcast_buffers, "bn": bn.broadcast_buffers, "sum": total.tolist()}


def test_ddp_broadcasts_buffers_only_for_batchnorm():
    out = launch_local(_buffer_broadcasts, (), world=2, threads=1)
    assert out == {"plain": False, "bn": True, "sum": [2.0, 2.0]}


@pytest.fixture
def store(tiny_train_store):
    return tiny_train_store


@pytest.mark.parametrize("head", ["tokens", "l1"])
def test_two_ranks_train_the_weights_of_one_process(store, tmp_path, capfd, head):
    """The same global batches (the sampler splits each one across ranks), gradients averaged by DDP:
    after 4 steps the weights agree to float rounding, for both action heads."""
    common = ["train", str(store), "cameras=[front]", "trainer.progress=false", "trainer.steps=4",
              "trainer.batch_size=8", "val_episodes=0", "model.vision.image_size=16",
              f"action_head={head}"]  # fmt: skip
    assert cli([*common, f"out={tmp_path / 'zero'}", "procs=1", "threads=1", "trainer.lr=1e-12"]) == 0
    init = load_file(tmp_path / "zero" / "checkpoints" / "step_00000004" / "model.safetensors")
    assert cli([*common, f"out={tmp_path / 'one'}", "procs=1", "threads=1"]) == 0
    assert cli([*common, f"out={tmp_path / 'two'}", "procs=2"]) == 0
    assert "2 local ranks x 1 torch thread(s), batch 4 each" in capfd.readouterr().out
    one = load_file(tmp_path / "one" / "checkpoints" / "step_00000004" / "model.safetensors")
    two = load_file(tmp_path / "two" / "checkpoints" / "step_00000004" / "model.safetensors")
    assert one.keys() == two.keys()
    moved = max(float((one[k] - two[k]).abs().max()) for k in one)
    assert moved < 1e-4, moved
    trained = max(float((one[k] - init[k]).abs().max()) for k in one)
    assert trained > 100 * max(moved, 1e-7), (trained, moved)  # the runs did train, and alike


def _spawn_and_hang(path: str) -> None:
    launch_local(_write_pid_and_wait, (path,), world=2)


def _write_pid_and_wait(path: str) -> None:
    import time
    from pathlib import Path

    Path(f"{path}.{os.environ['RANK']}").write_text(str(os.getpid()))
    time.sleep(120)


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (its state in /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_killing_the_launcher_ends_its_ranks(tmp_path):
    """SIGKILL of the launcher (a killed `vla train`) leaves no rank running."""
    import multiprocessing
    import signal
    import time

    ctx = multiprocessing.get_context("spawn")
    launcher = ctx.Process(target=_spawn_and_hang, args=(str(tmp_path / "pid"),))
    launcher.start()
    files = [tmp_path / f"pid.{r}" for r in range(2)]
    deadline = time.time() + 60
    while not all(f.exists() and f.read_text() for f in files) and time.time() < deadline:
        time.sleep(0.2)
    pids = [int(f.read_text()) for f in files]
    os.kill(launcher.pid, signal.SIGKILL)
    launcher.join()
    deadline = time.time() + 20
    alive = pids
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = [p for p in pids if _running(p)]
    assert not alive, f"ranks {alive} outlived their launcher"

"""Process-group set-up for `torchrun` (gloo on CPU, nccl on GPU), model wrapping, reductions, and
full (unsharded) state dicts for checkpoints.

Single process when WORLD_SIZE is unset or 1. Under `torchrun --nproc_per_node=N ...` every rank runs
the same trainer; rank 0 alone writes logs and checkpoints. On a CPU without torchrun, `launch_local`
does torchrun's job for one machine: it spawns N ranks (gloo over loopback, `threads` torch threads each)
and returns rank 0's result. A small model trains faster as N one-thread ranks of batch B/N than as one
process with N intra-op threads (measured in docs/training.md: the ranks' small kernels need no
cross-thread synchronisation, and N lock-stepped ranks slow down evenly, instead of thrashing, when
another process shares the CPU); `local_world_size` picks N. Strategies:

    ddp   DistributedDataParallel: every rank holds the whole model, gradients are all-reduced.
    fsdp  FSDP2 (`torch.distributed.fsdp.fully_shard`): parameters, gradients and optimiser state are
          sharded across ranks, for models that do not fit one GPU. Each of `model.fsdp_units()` (or, by
          default, each direct child with parameters) becomes one shard unit, then the root. Checkpoints
          hold the gathered full state dict, so an FSDP checkpoint loads into an unsharded model.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_any
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

STRATEGIES = ("auto", "none", "ddp", "fsdp")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    strategy: str = "none"  # what wrap_model applies: none | ddp | fsdp

    @property
    def fsdp(self) -> bool:
        return self.enabled and self.strategy == "fsdp"

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(strategy: str = "auto", device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op for one process)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown distributed strategy {strategy!r}; expected one of {list(STRATEGIES)}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if world <= 1 or strategy == "none":
        return DistInfo(device=device)
    wrap = "fsdp" if strategy == "fsdp" else "ddp"
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=device, strategy=wrap)


def wrap_model(model: nn.Module, info: DistInfo) -> nn.Module:
    """DDP wrapper, or FSDP2 sharding in place (the returned module is `model` itself)."""
    if not info.enabled:
        return model
    if info.fsdp:
        from torch.distributed.fsdp import fully_shard

        if hasattr(model, "fsdp_units"):
            units = list(model.fsdp_units())
        else:
            units = [m for m in model.children() if any(True for _ in m.parameters())]
        for unit in units:
            fully_shard(unit)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [info.local_rank] if info.device.startswith("cuda") else None
    # Buffers are broadcast from rank 0 before every forward only where training changes them (BatchNorm's
    # running statistics); the others (rotary frequencies, position ids, a frozen encoder's) are equal on
    # every rank, and broadcasting them cost 2.4% of a four-task training step on two CPU ranks.
    bn = any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats for m in model.modules()
    )
    return DistributedDataParallel(
        model, device_ids=ids, gradient_as_bucket_view=True, static_graph=True, broadcast_buffers=bn
    )


def set_gradient_sync(wrapped: nn.Module, info: DistInfo, sync: bool):
    """Context for one micro-step: skip the gradient all-reduce / reduce-scatter unless `sync`."""
    import contextlib

    if not info.enabled or sync:
        if info.fsdp:
            wrapped.set_requires_gradient_sync(True)
        return contextlib.nullcontext()
    if info.fsdp:
        wrapped.set_requires_gradient_sync(False)
        return contextlib.nullcontext()
    return wrapped.no_sync()


def full_state_dict(model: nn.Module, info: DistInfo) -> dict[str, torch.Tensor]:
    """The model's unsharded state dict (collective under FSDP: call it on every rank)."""
    if not info.fsdp:
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, info: DistInfo) -> dict:
    """The optimiser state to checkpoint: as is, or gathered to full tensors under FSDP (collective)."""
    if not info.fsdp:
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(model, optimizer, options=opts)


def load_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: dict, info: DistInfo
) -> None:
    if not info.fsdp:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if not info.enabled:
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; os.cpu_count() where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


AUTO_RANKS_MIN_STEPS = 500  # auto: shorter runs stay in one process (a rank costs ~3 s to start)


def local_world_size(
    procs: int, batch_size: int, steps: int, cores: int | None = None, min_rank_batch: int = 4
) -> int:
    """How many local ranks `launch_local` should start: `procs` when > 0 (checked against the batch),
    else (auto) one per available core, at most batch_size / min_rank_batch, and a divisor of the batch.
    Auto gives 1 (no launch) under torchrun, on a GPU machine, with one core, or for a run of fewer than
    AUTO_RANKS_MIN_STEPS optimiser steps (the ranks' start-up would cost more than they save)."""
    if procs < 0:
        raise ValueError(f"procs must be >= 0 (0: one rank per core), got {procs}")
    if procs > 0:
        if batch_size % procs:
            raise ValueError(f"procs={procs} must divide the batch size {batch_size} (each rank takes B/N)")
        return procs
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1  # under torchrun already
    if launched or torch.cuda.is_available() or steps < AUTO_RANKS_MIN_STEPS:
        return 1
    n = min(available_cores() if cores is None else cores, max(batch_size // min_rank_batch, 1))
    while n > 1 and batch_size % n:
        n -= 1
    return max(n, 1)


def _die_with_parent() -> None:
    """Linux: this process gets SIGTERM when the launcher dies, even by SIGKILL (a killed `vla train`
    leaves no rank behind writing checkpoints; the next run resumes from the last one)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: ranks end when their collectives fail instead
        return
    if os.getppid() == 1:  # the launcher died before prctl took effect
        os._exit(1)


def _rank_main(rank: int, world: int, port: int, threads: int, fn: Callable, args: tuple, report) -> None:
    """One spawned rank: torchrun's environment, `threads` torch threads, then fn(*args); rank 0 sends its
    return value (or any rank its error) to the parent."""
    _die_with_parent()
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), TORCHELASTIC_USE_AGENT_STORE="True",
    )
    torch.set_num_threads(threads)
    try:
        value = fn(*args)
    except BaseException as e:  # reported to the parent, which raises it there
        report.send((rank, "error", (type(e).__name__, str(e)), traceback.format_exc()))
        raise SystemExit(1) from None
    finally:  # a group left to the interpreter's exit can abort the rank as its peer goes away
        if dist.is_initialized():
            dist.destroy_process_group()
    report.send((rank, "ok", value if rank == 0 else None, ""))


def launch_local(fn: Callable[..., Any], args: tuple, world: int, threads: int = 1) -> Any:
    """Run fn(*args) in `world` spawned ranks of a gloo process group on this machine (torchrun's
    environment: RANK, WORLD_SIZE, MASTER_ADDR/PORT) and return rank 0's result (plain picklable data:
    a tensor would travel as a handle to memory its rank frees on exit). A rank's exception is
    raised here with its message: ValueError, FileNotFoundError and FileExistsError keep their type (the
    CLI prints them as one line), anything else becomes a RuntimeError carrying the rank's traceback."""
    if world < 2:
        raise ValueError(f"launch_local needs >= 2 ranks, got {world}")
    ctx = mp.get_context("spawn")
    # The launcher hosts the rendezvous store, as torchrun's agent does, on a port the OS picks as it
    # binds: no window in which another process can take a port chosen for a rank to bind later.
    store = dist.TCPStore("127.0.0.1", 0, world_size=world, is_master=True, wait_for_workers=False)
    port = store.port
    pipes = [ctx.Pipe(duplex=False) for _ in range(world)]  # (parent's reader, rank's writer)
    procs = [
        ctx.Process(target=_rank_main, args=(r, world, port, threads, fn, args, pipes[r][1]))
        for r in range(world)
    ]
    for p in procs:
        p.start()
    for _, writer in pipes:
        writer.close()  # the ranks hold the writing ends
    reports: list[tuple] = []
    readers = [reader for reader, _ in pipes]
    try:
        running = list(procs)
        while running or readers:  # a failed rank stops the others (they would wait in a collective)
            for ready in wait_any([p.sentinel for p in running] + readers, timeout=5.0):
                if ready in readers:
                    try:
                        reports.append(ready.recv())
                    except EOFError:
                        pass
                    readers.remove(ready)
            for p in [p for p in running if not p.is_alive()]:
                running.remove(p)
                if p.exitcode:
                    for q in running:
                        q.terminate()
    finally:  # Ctrl-C or an error here: no rank outlives the launcher (a run resumes from its checkpoint)
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    errors = [r for r in reports if r[1] == "error"]
    if errors:  # the first one reported: the others are usually its echo (a peer gone mid-collective)
        rank, _, (kind, text), tb = errors[0]
        for known in (ValueError, FileNotFoundError, FileExistsError):
            if kind == known.__name__:
                raise known(text)
        raise RuntimeError(f"rank {rank} of {world} failed: {kind}: {text}\n{tb}")
    bad = [(r, p.exitcode) for r, p in enumerate(procs) if p.exitcode]
    done = [r for r in reports if r[0] == 0 and r[1] == "ok"]
    if bad or not done:
        raise RuntimeError(f"local training ranks exited abnormally (rank, exit code): {bad or 'no result'}")
    return done[0][2]

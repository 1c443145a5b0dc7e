"""Process-group set-up for `torchrun` (gloo on CPU, nccl on GPU), model wrapping, reductions, and
full (unsharded) state dicts for checkpoints.

Single process when WORLD_SIZE is unset or 1. Under `torchrun --nproc_per_node=N ...` every rank runs
the same trainer; rank 0 alone writes logs and checkpoints. Strategies:

    ddp   DistributedDataParallel: every rank holds the whole model, gradients are all-reduced.
    fsdp  FSDP2 (`torch.distributed.fsdp.fully_shard`): parameters, gradients and optimiser state are
          sharded across ranks, for models that do not fit one GPU. Each of `model.fsdp_units()` (or, by
          default, each direct child with parameters) becomes one shard unit, then the root. Checkpoints
          hold the gathered full state dict, so an FSDP checkpoint loads into an unsharded model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
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
    return DistributedDataParallel(model, device_ids=ids)


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

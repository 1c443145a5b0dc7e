"""The training loop shared by every model of the stack (VLA, VQA, co-training mixtures).

A model is trained if it is an `nn.Module` whose `forward(batch)` returns a dict with a scalar `"loss"`
tensor and optionally other scalar metrics. The loop gives it: AdamW with decay/no-decay groups, warmup +
cosine, gradient accumulation and clipping, bf16 autocast where the device supports it, optional EMA,
freeze schedules per named component (`model.components() -> {name: module}`), periodic validation,
DDP under torchrun, atomic checkpoints with keep-last-k, bit-exact resume (same data order, same RNG),
a progress bar, JSONL + tensorboard logs, a loss plot and a closing summary. A non-finite loss stops the
run with a message and keeps the last good checkpoint.

    trainer = Trainer(TrainerConfig(steps=200, batch_size=16, out_dir="outputs/run"))
    result = trainer.fit(model, train_set, val_set=None, collate_fn=collate,
                         checkpoint_contents=lambda sd: model.checkpoint_contents(sd))

The settings live in vla.training.trainer_config (re-exported here): `TrainerConfig` and `FreezePhase`,
`check_settings`, and the resume comparison (`RESUME_SETTINGS`, `resume_changes`, `data_fingerprints`,
`data_changes`); this module is the loop that uses them (`Trainer`, `TrainResult`).

Checkpoints go through the project's one checkpoint module (vla.models.checkpoint): the model says what a
checkpoint holds (`checkpoint_contents(state_dict)`; default: the weights only) and the run's
`CheckpointManager` writes it with the resume state (`<out>/checkpoints/step_N/`, `latest`, keep-last-k).

Resume (`resume=true`) continues from the run's newest intact checkpoint (a damaged latest one is skipped
with a warning, vla.models.checkpoint) and first compares the settings it was trained with against this
run's: the trainer's optimisation settings (`RESUME_SETTINGS`, saved in train_state.pt) and the sections
of config.json the model writes (for `vla train`: the store, the model, the tokenizer, the trainer), and
the data itself: every episode store that config names by a `path` is fingerprinted when a run starts
(`EpisodeStore.fingerprint`: episode and frame counts, a crc32 of the episodes' metadata and checksums,
kept in train_state.pt), so a store re-collected or appended to at the same path is a change too. A
difference is one error line naming each changed setting (`trainer.lr 0.0003 -> 0.001`); with
`resume_force=true` the run goes on with a warning and the new optimiser settings. `steps` may change
(a run is extended that way), as may where and how the run executes (out_dir, device, strategy, logging,
checkpoint cadence, workers).

`batch_size` is the global batch of one micro-step (split evenly across ranks); one optimiser step sees
`batch_size * grad_accum` samples. Samples are drawn by a `ResumableBatchSampler` (uniform, or weighted
with `sample_weights`), or by any step-aware sampler given as `batch_sampler=lambda rank, world: ...`
(e.g. `vla.data.mixture.MixtureBatchSampler`, whose weights follow a schedule over steps): the trainer
calls its `set_position(consumed_micro_batches)` before iterating, so a resumed run draws the same batches.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from vla.core.io import read_json, storage_faults
from vla.models.checkpoint import (
    CONFIG_FILE,
    CheckpointContents,
    CheckpointManager,
    load_weights,
    read_train_state,
)
from vla.training.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    full_state_dict,
    init_distributed,
    load_optimizer_state,
    optimizer_state,
    set_gradient_sync,
    shutdown,
    wrap_model,
)
from vla.training.ema import EMA
from vla.training.logs import RunLogger
from vla.training.optim import build_optimizer, warmup_cosine
from vla.training.rng import rng_state, seed_everything, set_rng_state
from vla.training.sampler import ResumableBatchSampler
from vla.training.trainer_config import RESUME_SETTINGS as RESUME_SETTINGS
from vla.training.trainer_config import (
    FreezePhase,
    TrainerConfig,
    _comparable,
    _plain,
    check_settings,
    data_changes,
    data_fingerprints,
    resume_changes,
    trainer_settings,
)
from vla.training.trainer_config import store_paths as store_paths


class PositionedBatchSampler(Protocol):
    """A batch sampler whose output is a pure function of its position (micro-batches consumed so far)."""

    def set_position(self, consumed_batches: int) -> None: ...

    def __iter__(self) -> Iterator[list[int]]: ...


@dataclass
class TrainResult:
    status: str  # "done" | "nan"
    step: int
    final_loss: float
    val: dict[str, float]
    checkpoint: Path | None
    wall_time_s: float
    samples_per_s: float
    message: str = ""


def _to_device(batch: Any, device: str) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _weights_only(state_dict: dict[str, torch.Tensor]) -> CheckpointContents:
    """The default checkpoint of a plain nn.Module: its weights (no config.json; resumable only)."""
    return CheckpointContents(state_dict=state_dict)


class Trainer:
    def __init__(self, config: TrainerConfig):
        c = config
        check_settings(c)
        if c.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"trainer: unknown precision {c.precision!r}; expected auto, fp32 or bf16")
        if c.strategy == "fsdp" and (c.ema_decay > 0 or c.freeze_schedule):
            raise ValueError(
                "trainer: strategy=fsdp supports neither EMA nor freeze schedules (sharded parameters "
                "cannot be re-wrapped or mirrored); use ddp for those, or set ema_decay=0 and no schedule"
            )
        self.cfg = config
        self._forced = False  # set on resume: settings changed and resume_force=true

    # ---------------------------------------------------------------------------------------------
    def _phase_index(self, step: int) -> int:
        """Index of the freeze phase active during optimiser step `step` (-1: no phase, all trainable)."""
        for i, phase in enumerate(self.cfg.freeze_schedule):
            if phase.until < 0 or step < phase.until:
                return i
        return -1

    def _phase(self, step: int) -> FreezePhase | None:
        i = self._phase_index(step)
        return self.cfg.freeze_schedule[i] if i >= 0 else None

    def _apply_phase(self, model: nn.Module, phase: FreezePhase | None, trainable0: dict[str, bool]) -> None:
        for name, p in model.named_parameters():  # back to the model's own choice of what trains
            p.requires_grad_(trainable0[name])
        if phase is None:
            return
        comps = model.components() if hasattr(model, "components") else {}
        unknown = sorted(set(phase.train) - set(comps))
        if unknown:
            raise ValueError(f"freeze_schedule names unknown components {unknown}; model has {sorted(comps)}")
        keep = {id(p) for n in phase.train for p in comps[n].parameters()}
        for p in model.parameters():
            if id(p) not in keep:
                p.requires_grad_(False)

    def _autocast(self, device: str) -> contextlib.AbstractContextManager:
        want = self.cfg.precision
        cuda_bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
        if want == "bf16" or (want == "auto" and cuda_bf16):
            return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _build_opt(self, model: nn.Module, step: int):
        c = self.cfg
        opt = build_optimizer(model, lr=c.lr, weight_decay=c.weight_decay, betas=tuple(c.betas))
        sched = warmup_cosine(opt, c.warmup_steps, c.steps, c.min_lr_ratio, start_step=step)
        return opt, sched

    def _loader(self, dataset: Dataset, sampler: PositionedBatchSampler, collate_fn) -> DataLoader:
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=self.cfg.num_workers,
            collate_fn=collate_fn,
            persistent_workers=False,
            generator=torch.Generator().manual_seed(self.cfg.seed),
        )

    def _check_resume(
        self,
        resume_dir: Path,
        state: Mapping[str, Any],
        model: nn.Module,
        checkpoint_contents: Callable[[dict[str, torch.Tensor]], CheckpointContents],
        info: DistInfo,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Compare the checkpoint's settings (and the fingerprints of its stores, `data`) with this run's:
        a ValueError naming what changed, unless resume_force (then one warning line and `self._forced`)."""
        c = self.cfg
        saved: dict[str, Any] = {}
        current: dict[str, Any] = {}
        if (resume_dir / CONFIG_FILE).is_file():
            ours = checkpoint_contents(model.state_dict())
            if ours.model_type is not None:
                saved.update(_comparable(read_json(resume_dir / CONFIG_FILE, "checkpoint config")))
                current.update(_comparable(_plain(ours.config())))
        if isinstance(state.get("trainer_config"), Mapping):
            saved.update({f"trainer.{k}": v for k, v in state["trainer_config"].items()})
            current.update({f"trainer.{k}": v for k, v in trainer_settings(c).items()})
        changes = resume_changes(saved, current) + data_changes(state.get("data_fingerprints"), data or {})
        self._forced = bool(changes) and c.resume_force
        if not changes:
            return
        shown = "; ".join(changes[:6]) + (f"; and {len(changes) - 6} more" if len(changes) > 6 else "")
        if not c.resume_force:
            raise ValueError(
                f"trainer.resume=true: {resume_dir} was trained with other settings ({shown}); resume with "
                "the same ones, train into another out=, or set trainer.resume_force=true to go on anyway"
            )
        if info.is_main:
            warning = (
                f"resuming {resume_dir} with changed settings ({shown}) because trainer.resume_force=true"
            )
            print(f"[train] warning: {warning}", flush=True)

    @torch.no_grad()
    def validate(self, model: nn.Module, val_set: Dataset, collate_fn, info: DistInfo) -> dict[str, float]:
        c = self.cfg
        model.eval()
        n = min(len(val_set), c.batch_size * c.val_batches)
        loader = DataLoader(
            torch.utils.data.Subset(val_set, range(n)), batch_size=c.batch_size, collate_fn=collate_fn
        )
        sums: dict[str, float] = {}
        count = 0
        for batch in loader:
            with self._autocast(info.device):
                out = model(_to_device(batch, info.device))
            for k, v in out.items():
                if torch.is_tensor(v) and v.numel() == 1:
                    sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
        model.train()
        return {k: v / max(count, 1) for k, v in sums.items()}

    # ---------------------------------------------------------------------------------------------
    def fit(
        self,
        model: nn.Module,
        train_set: Dataset,
        val_set: Dataset | None = None,
        collate_fn: Callable | None = None,
        checkpoint_contents: Callable[[dict[str, torch.Tensor]], CheckpointContents] | None = None,
        load_model: Callable[[nn.Module, Path], None] | None = None,
        sample_weights: torch.Tensor | None = None,
        batch_sampler: Callable[[int, int], PositionedBatchSampler] | None = None,
    ) -> TrainResult:
        """Train `model` for `steps` optimiser steps. `checkpoint_contents(state_dict)` says what a
        checkpoint holds for those weights (default: the weights only); `load_model(model, directory)`
        loads a checkpoint's weights on resume (default: vla.models.checkpoint.load_weights).
        `batch_sampler(rank, world_size)` (optional) replaces the default sampler; it must yield each
        rank's slice of the global batch and honour set_position."""
        c = self.cfg
        if batch_sampler is not None and sample_weights is not None:
            raise ValueError("trainer: give sample_weights or batch_sampler, not both")
        info = init_distributed(c.strategy, c.device)
        out = Path(c.out_dir)
        with storage_faults(out):  # a file, a read-only or a full disk there: one line, before any work
            out.mkdir(parents=True, exist_ok=True)
        ckpts = CheckpointManager.of_run(out, c.keep_last)
        checkpoint_contents = checkpoint_contents or _weights_only
        load_model = load_model or load_weights
        seed_everything(c.seed)
        model.to(info.device)
        trainable0 = {n: p.requires_grad for n, p in model.named_parameters()}

        step, consumed, state = 0, 0, None
        # the stores this run trains on, as they are now: kept in every checkpoint, compared on resume
        ours = checkpoint_contents(model.state_dict())
        data = data_fingerprints(_plain(ours.config())) if ours.model_type is not None else {}
        resume_dir = ckpts.latest() if c.resume else None
        if c.resume and resume_dir is None and info.is_main:
            print(f"[train] resume requested but no checkpoint in {ckpts.root}: starting from step 0")
        if resume_dir is not None:
            state = read_train_state(resume_dir)
            self._check_resume(resume_dir, state, model, checkpoint_contents, info, data)
            if "model_raw" in state:  # EMA run: the safetensors file holds EMA weights
                model.load_state_dict(state["model_raw"], strict=True)
            else:
                load_model(model, resume_dir)
            step, consumed = int(state["step"]), int(state["consumed_batches"])

        phase = self._phase(step)
        self._apply_phase(model, phase, trainable0)
        wrapped = wrap_model(model, info)
        opt, sched = self._build_opt(model, step)
        ema = EMA(model, c.ema_decay) if c.ema_decay > 0 else None
        # At a phase boundary the uninterrupted run builds a fresh optimiser, so the saved one is not loaded.
        if state is not None and int(state["phase_index"]) == self._phase_index(step):
            fresh = [
                {k: g[k] for k in ("lr", "initial_lr", "betas", "weight_decay")} for g in opt.param_groups
            ]
            load_optimizer_state(model, opt, state["optimizer"], info)
            sched.load_state_dict(state["scheduler"])
            if self._forced:  # resume_force: the new optimiser settings apply from here on
                for g, f in zip(opt.param_groups, fresh):
                    g.update(betas=f["betas"], weight_decay=f["weight_decay"], initial_lr=f["initial_lr"])
                sched.base_lrs = [f["initial_lr"] for f in fresh]
                for g, base, fn in zip(opt.param_groups, sched.base_lrs, sched.lr_lambdas):
                    g["lr"] = base * fn(sched.last_epoch)
        if state is not None:
            if ema is not None and "ema" in state:
                ema.load_state_dict(state["ema"], int(state["ema_step"]))
            set_rng_state(state["rng"])

        if batch_sampler is not None:
            sampler = batch_sampler(info.rank, info.world_size)
        else:
            sampler = ResumableBatchSampler(
                len(train_set), c.batch_size, c.seed, info.rank, info.world_size, weights=sample_weights
            )
        sampler.set_position(consumed)
        batches = iter(self._loader(train_set, sampler, collate_fn))
        logger = RunLogger(out, enabled=info.is_main, resume_step=step if state is not None else None)
        bar = None
        if c.progress and info.is_main:
            from tqdm import tqdm

            bar = tqdm(total=c.steps, initial=step, desc="train", unit="step", dynamic_ncols=True)

        def write_checkpoint(at_step: int) -> Path | None:
            # model.safetensors holds the weights to deploy (EMA ones when EMA is on); train_state.pt then
            # also keeps the raw weights, so a resumed run continues from exactly where it stopped.
            raw = full_state_dict(model, info)  # collective under FSDP: every rank calls it
            deploy = {**raw, **ema.state_dict()} if ema is not None else raw
            train_state = {
                "step": at_step,
                "trainer_config": trainer_settings(c),
                "consumed_batches": consumed,
                "optimizer": optimizer_state(model, opt, info),
                "scheduler": sched.state_dict(),
                "phase_index": self._phase_index(at_step - 1),
                "rng": rng_state(),
                "data_fingerprints": data,
            }
            if ema is not None:
                train_state["ema"], train_state["ema_step"] = ema.state_dict(), ema.step
                train_state["model_raw"] = {k: v.detach().cpu().clone() for k, v in raw.items()}
            path = None
            if info.is_main:
                path = ckpts.save(at_step, checkpoint_contents(deploy), train_state)
            barrier(info)
            return path

        t0, start_step = time.perf_counter(), step
        last_loss, last_ckpt, status, message, val_metrics = math.nan, ckpts.latest(), "done", "", {}
        model.train()
        while step < c.steps:
            new_phase = self._phase(step)
            if new_phase is not phase:  # freeze schedule boundary: re-wrap and rebuild the optimiser
                phase = new_phase
                self._apply_phase(model, phase, trainable0)
                wrapped = wrap_model(model, info)
                opt, sched = self._build_opt(model, step)
            sums: dict[str, float] = {}
            for micro in range(c.grad_accum):
                batch = _to_device(next(batches), info.device)
                with set_gradient_sync(wrapped, info, sync=micro == c.grad_accum - 1):
                    with self._autocast(info.device):
                        outputs = wrapped(batch)
                    loss = outputs["loss"]
                    (loss / c.grad_accum).backward()
                for k, v in outputs.items():
                    if torch.is_tensor(v) and v.numel() == 1:
                        sums[k] = sums.get(k, 0.0) + float(v.detach()) / c.grad_accum
                consumed += 1
            loss_t = all_reduce_mean(torch.tensor(sums["loss"], dtype=torch.float64), info)
            if not math.isfinite(float(loss_t)):
                status = "nan"
                message = (
                    f"non-finite loss {float(loss_t)} at step {step}; stopped. The last good "
                    f"checkpoint is {last_ckpt or '(none yet)'}"
                )
                break
            params = [p for p in model.parameters() if p.requires_grad]
            grad_norm = torch.nn.utils.clip_grad_norm_(params, c.grad_clip) if c.grad_clip > 0 else None
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update(model)
            step += 1
            last_loss = float(loss_t)
            if step % c.log_every == 0 or step == c.steps:
                metrics = {**sums, "loss": last_loss, "lr": sched.get_last_lr()[0]}
                if grad_norm is not None:
                    metrics["grad_norm"] = float(grad_norm)
                logger.log(step, "train", metrics)
            if bar is not None:
                bar.update(1)
                per_source = {k: f"{v:.4f}" for k, v in sums.items() if k.startswith("loss_")}
                bar.set_postfix(loss=f"{last_loss:.4f}", **per_source)
            is_last = step == c.steps
            if val_set is not None and ((c.val_every and step % c.val_every == 0) or is_last):
                ctx = ema.applied(model) if ema is not None else contextlib.nullcontext()
                with ctx:
                    val_metrics = self.validate(model, val_set, collate_fn, info)
                logger.log(step, "val", val_metrics)
            if (c.save_every and step % c.save_every == 0) or is_last:
                last_ckpt = write_checkpoint(step) or last_ckpt

        if bar is not None:
            bar.close()
        wall = time.perf_counter() - t0
        samples = (step - start_step) * c.batch_size * c.grad_accum
        result = TrainResult(
            status, step, last_loss, val_metrics, last_ckpt, wall, samples / max(wall, 1e-9), message
        )
        if info.is_main:
            logger.plot()
            logger.close()
            print(self.summary(result))
        for name, p in model.named_parameters():  # freeze phases never leak out of fit()
            p.requires_grad_(trainable0[name])
        barrier(info)
        shutdown(info)
        return result

    @staticmethod
    def summary(r: TrainResult) -> str:
        head = "training stopped: " + r.message if r.status != "done" else "training done"
        val = ", ".join(f"{k} {v:.4f}" for k, v in r.val.items()) or "none"
        return (
            f"[train] {head}\n  steps {r.step}  final loss {r.final_loss:.4f}  val: {val}\n"
            f"  {r.wall_time_s:.1f} s, {r.samples_per_s:.1f} samples/s  checkpoint: {r.checkpoint}"
        )

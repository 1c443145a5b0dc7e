"""`vla train`: train a VLA on an episode store (or a weighted mixture of stores) with the generic Trainer.

Composes `configs/train.yaml` (groups `model`, `data`, `tokenizer`; trainer options under `trainer.`),
checks every input before the first step (store features vs cameras/state/action dim, tokenizer), fits
the action tokenizer on the training episodes' action chunks, builds the VLA and its processor, and runs
`vla.training.trainer.Trainer`. Every checkpoint (`<out>/checkpoints/step_N/`) is a complete VLA
checkpoint directory that `VLA.from_pretrained`, `VLAPolicy.from_pretrained` and `vla eval checkpoint=`
load; `trainer.resume=true` continues the run bit for bit from the latest one.

    vla train data.path=outputs/demos/pick.zarr out=outputs/train/pick trainer.steps=2000
    vla train +experiment=pick_tiny                          # a preset in configs/experiment/
    vla train ... procs=1 threads=2                        # one process (default on CPU: a rank per core)
    torchrun --nproc_per_node=2 -m vla.cli train ... trainer.strategy=ddp
    vla train ... 'mixture=[{path: a.zarr, weight: 2.0}, {path: b.zarr, weight: 1.0}]'
    vla train ... model.goal_points.num_groups=16 model.goal_points.in_features=6   # goal-cloud tokens
    vla train ... +data@cotrain=vqa_cotrain cotrain.vqa.0.source.path=outputs/scene_vqa/train.json
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from action_tokenizers import make_tokenizer
from vla.backbones.config import VLMConfig, vlm_config_from_dict
from vla.core.config import compose, register_config, save_resolved, split_positionals
from vla.core.memory import keep_freed_memory
from vla.core.normalizer import Normalizer
from vla.core.types import ACTION_KEY, STATE_KEY, image_key
from vla.data.config import DataConfig, window_spec
from vla.data.mixture import MixtureSource, build_mixture
from vla.data.store import EpisodeStore
from vla.data.vqa.cotrain import CoTrainConfig, cotrain_config_from_dict
from vla.data.windows import WindowDataset
from vla.models.action_head import check_action_head
from vla.models.checkpoint import CheckpointManager
from vla.models.vla import VLA
from vla.pointcloud.model_inputs import point_training_setup
from vla.processor import DEFAULT_PROMPT, ProcessorConfig
from vla.training.distributed import available_cores, launch_local, local_world_size
from vla.training.mixture import cotrain_fit
from vla.training.trainer import Trainer, TrainerConfig


@register_config("train")
@dataclass
class TrainConfig:
    model: VLMConfig = field(default_factory=VLMConfig)  # group `model`
    data: DataConfig = field(default_factory=DataConfig)  # group `data`
    tokenizer: dict[str, Any] = field(default_factory=dict)  # group `tokenizer`
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # `trainer.<field>=`; out_dir: ${out}
    out: str = "outputs/train"
    cameras: list[str] = field(default_factory=lambda: ["static", "wrist"])
    use_state: bool = True
    chunk_len: int = 1  # action steps predicted per call; sets tokenizer.chunk_len and data.n_action
    prompt: str = DEFAULT_PROMPT
    vocab_mode: str = "append"
    val_episodes: int = 2  # episodes held out of the (first) store for validation; 0: none
    mixture: list[dict[str, Any]] = field(default_factory=list)  # extra stores [{path, weight}]
    cotrain: CoTrainConfig | None = None  # VQA co-training: +data@cotrain=vqa_cotrain (docs/vqa.md)
    threads: int = 0  # torch CPU threads per process; 0: torch's default (one process) or cores / procs
    procs: int = 0  # local data-parallel ranks on a CPU (0: one per core for runs of >= 500 steps; 1: one)
    action_label_sigma: float = 0.0  # > 0: Gaussian soft labels this many bins wide (vla.models.losses)
    action_head: str = "tokens"  # "tokens" (RT-2/OpenVLA) or "l1" (OFT continuous head, models/action_head)


def load_config(argv: Sequence[str]) -> TrainConfig:
    """Compose configs/train.yaml with overrides; hydra/omegaconf errors become one-line ValueErrors."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        raw = compose("train", split_positionals(argv, ["data.path"]))
        data = OmegaConf.to_container(raw, resolve=True, throw_on_missing=True)
        trainer = OmegaConf.to_object(raw.trainer)  # the TrainerConfig itself (freeze phases typed)
    except (HydraException, OmegaConfBaseException) as e:
        raise ValueError(f"config 'train': {str(e).splitlines()[0]}") from e
    assert isinstance(data, dict) and isinstance(trainer, TrainerConfig)
    data.pop("trainer")
    model = vlm_config_from_dict(data.pop("model"), where="train config: model")
    cotrain = data.pop("cotrain", None)
    cfg = TrainConfig(
        model=model,
        cotrain=None if cotrain is None else cotrain_config_from_dict(cotrain, "train config: cotrain"),
        data=DataConfig(**data.pop("data")),
        trainer=trainer,
        **data,
    )
    if cfg.chunk_len < 1:
        raise ValueError(f"chunk_len must be >= 1, got {cfg.chunk_len}")
    check_action_head(cfg.action_head)
    if cfg.cotrain is not None and cfg.action_head != "tokens":
        raise ValueError("VQA co-training needs action tokens (action_head=tokens), not action_head=l1")
    if cfg.action_label_sigma > 0 and cfg.action_head != "tokens":
        raise ValueError("action_label_sigma applies to action tokens, not action_head=l1")
    cfg.tokenizer = {**cfg.tokenizer, "chunk_len": cfg.chunk_len}
    cfg.data = dataclasses.replace(cfg.data, n_action=cfg.chunk_len)
    return cfg


def check_store(path: str, cfg: TrainConfig, action_dim: int) -> EpisodeStore:
    """Every feature the model needs is in the store, with the right shape: else a clear error."""
    if not Path(path).exists():
        raise FileNotFoundError(f"training store not found: {path} (collect one: vla collect out={path})")
    store = EpisodeStore.open(path)
    feats = store.features
    for cam in cfg.cameras:
        if image_key(cam) not in feats:
            have = sorted(k for k in feats if k.startswith("images/"))
            raise ValueError(
                f"{path}: cameras={cfg.cameras} but the store has no {image_key(cam)!r} ({have})"
            )
    if ACTION_KEY not in feats or tuple(feats[ACTION_KEY].shape) != (action_dim,):
        got = tuple(feats[ACTION_KEY].shape) if ACTION_KEY in feats else None
        raise ValueError(
            f"{path}: {ACTION_KEY!r} has shape {got} but the action tokenizer expects ({action_dim},) "
            f"(tokenizer.action_dim)"
        )
    if cfg.use_state and STATE_KEY not in feats:
        raise ValueError(f"{path}: use_state=true but the store has no {STATE_KEY!r} feature")
    if store.num_episodes == 0:
        raise ValueError(f"{path}: the store has no episodes")
    return store


def fit_action_tokenizer(tok_cfg: dict[str, Any], actions: list[np.ndarray], norm: Normalizer) -> Any:
    """Make and fit the configured tokenizer on action chunks of the training episodes."""

    kw = {k: v for k, v in tok_cfg.items() if k != "name"}
    if "name" not in tok_cfg:
        raise ValueError("tokenizer: missing 'name' (choose tokenizer=uniform|quantile|openvla|fast)")
    tok = make_tokenizer(str(tok_cfg["name"]), **kw)
    t = tok.chunk_len
    chunks = []
    for a in actions:  # a [T_e, D] raw
        x = np.asarray(norm.normalize(ACTION_KEY, a) if tok.input_space != "raw" else a, dtype=np.float64)
        for s in range(0, max(len(x) - t + 1, 1)):
            w = x[s : s + t]
            if len(w) == t:
                chunks.append(w)
    if not chunks:
        raise ValueError(f"no action chunks of length {t} in the training episodes (episodes too short?)")
    return tok.fit(np.stack(chunks))  # [N,T,D]


def build_datasets(cfg: TrainConfig) -> tuple[Any, Any, torch.Tensor | None, list[np.ndarray], Normalizer]:
    """Train set (a store or a weighted mixture), val set, per-sample weights, train actions, normaliser."""
    action_dim = int(cfg.tokenizer.get("action_dim", 7))
    store = check_store(cfg.data.path, cfg, action_dim)
    spec = window_spec(cfg.data)
    keys = [image_key(c) for c in cfg.cameras] + ([STATE_KEY] if cfg.use_state else [])
    points = point_training_setup(cfg.model, store)  # clouds the model's point encoders need (3D-VLA)
    spec.obs_keys, spec.goal_cloud = keys + points.obs_keys, points.goal_source
    chosen = store.select(task=cfg.data.task, success=cfg.data.success, split=cfg.data.split)
    if len(chosen) <= cfg.val_episodes:
        raise ValueError(
            f"{cfg.data.path}: {len(chosen)} matching episodes, but val_episodes={cfg.val_episodes} are held "
            "out; collect more or set val_episodes=0"
        )
    n_val = cfg.val_episodes
    train_eps, val_eps = chosen[: len(chosen) - n_val], chosen[len(chosen) - n_val :]
    sources = [MixtureSource(cfg.data.path, 1.0, train_eps)]
    for m in cfg.mixture:
        if "path" not in m:
            raise ValueError(f"mixture entry {m}: missing 'path'")
        mstore = check_store(str(m["path"]), cfg, action_dim)
        sources.append(
            MixtureSource(str(m["path"]), float(m.get("weight", 1.0)), list(range(mstore.num_episodes)))
        )
    if len(sources) == 1:
        # one store: plain windows, statistics of that store
        norm = store.normalizer(dict(cfg.data.normalization))
        train = WindowDataset(cfg.data.path, spec, episodes=train_eps)
        weights = None
    else:
        train, weights, norm = build_mixture(sources, spec, dict(cfg.data.normalization))
    val = WindowDataset(cfg.data.path, spec, episodes=val_eps) if val_eps else None
    actions = [np.asarray(store.episode(i, keys=[ACTION_KEY])[ACTION_KEY]) for i in train_eps]
    return train, val, weights, actions, norm


def run(cfg: TrainConfig) -> Any:
    """Build everything from `cfg`, train, and return the TrainResult."""
    tcfg = cfg.trainer
    trainer = Trainer(tcfg)  # checks steps/batch/precision before any data is read
    keep_freed_memory()  # no page faults for the activations every step (vla.core.memory)
    train, val, weights, actions, norm = build_datasets(cfg)
    latest = CheckpointManager.of_run(tcfg.out_dir).latest() if tcfg.resume else None
    if latest is not None:  # same tokenizer, normaliser and vocabulary as the interrupted run
        model = VLA.from_pretrained(latest).train()
    else:
        tok = fit_action_tokenizer(cfg.tokenizer, actions, norm)
        pcfg = ProcessorConfig(
            cameras=list(cfg.cameras),
            use_state=cfg.use_state,
            state_dim=int(EpisodeStore.open(cfg.data.path).features[STATE_KEY].shape[0])
            if cfg.use_state
            else 0,
            n_obs=cfg.data.n_obs,
            prompt=cfg.prompt,
            vocab_mode=cfg.vocab_mode,
            **point_training_setup(cfg.model, EpisodeStore.open(cfg.data.path)).processor_fields,
        )
        torch.manual_seed(tcfg.seed)  # identical initial weights for the same seed
        model = VLA.build(cfg.model, pcfg, tok, norm, action_head=cfg.action_head)
    model.set_action_label_sigma(cfg.action_label_sigma)  # a training option, re-applied on resume
    resolved = {"train": OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)}
    n_params = sum(p.numel() for p in model.parameters())
    if int(os.environ.get("RANK", "0")) == 0:
        print(
            f"[train] VLA {n_params / 1e6:.2f} M params, {len(train)} train windows"
            f"{f', {len(val)} val windows' if val is not None else ''}, chunk {cfg.chunk_len}, "
            f"cameras {cfg.cameras}, state {cfg.use_state}, tokenizer {model.processor.action_tokenizer.name}"
        )
    fit_kw = {
        "collate_fn": model.processor.collate,
        "checkpoint_contents": lambda sd: model.checkpoint_contents(sd, extra_config=resolved),
        "load_model": lambda m, d: m.load_weights(d),
        "sample_weights": weights,
    }
    fit_model = model
    if cfg.cotrain is not None:  # robot windows + VQA samples in every batch (vla.training.mixture)
        fit_model, train, fit_kw = cotrain_fit(cfg.cotrain, model, train, tcfg, **fit_kw)
    return trainer.fit(fit_model, train, val, **fit_kw)


def local_ranks(cfg: TrainConfig) -> int:
    """Local data-parallel ranks for `cfg` (vla.training.distributed.local_world_size; 1 with
    trainer.strategy=none)."""
    if cfg.trainer.strategy == "none":
        return 1
    return local_world_size(cfg.procs, cfg.trainer.batch_size, cfg.trainer.steps)


def main(argv: Sequence[str]) -> int:
    cfg = load_config(argv)
    world = local_ranks(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        save_resolved(OmegaConf.structured(cfg), cfg.out)
    if world > 1:  # one rank per core, batch split (docs/training.md, "Training throughput")
        Trainer(cfg.trainer)  # bad trainer options fail here, before any process starts
        check_store(cfg.data.path, cfg, int(cfg.tokenizer.get("action_dim", 7)))
        threads = cfg.threads if cfg.threads > 0 else max(available_cores() // world, 1)
        each = cfg.trainer.batch_size // world
        print(f"[train] {world} local ranks x {threads} torch thread(s), batch {each} each", flush=True)
        result = launch_local(run, (cfg,), world, threads)
    else:
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        result = run(cfg)
    if result.status != "done":
        print(f"[train] {result.message}")
        return 1
    if result.checkpoint is not None:  # rank 0 (the rank that writes checkpoints)
        print(f"[train] checkpoint: {result.checkpoint}\n  evaluate: vla eval checkpoint={result.checkpoint}")
    return 0

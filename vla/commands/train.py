"""`vla train`: train a VLA on an episode store (or a weighted mixture of stores) with the generic Trainer.

Composes `configs/train.yaml` (groups `model`, `data`, `tokenizer`; trainer options under `trainer.`),
checks every input before the first step (store features vs cameras/state/action dim, tokenizer), fits
the action tokenizer on the training episodes' action chunks, builds the VLA and its processor, and runs
`vla.training.trainer.Trainer`. Every checkpoint (`<out>/checkpoints/step_N/`) is a complete VLA
checkpoint directory that `VLA.from_pretrained`, `VLAPolicy.from_pretrained` and `vla eval checkpoint=`
load; `trainer.resume=true` continues the run bit for bit from the latest one.

Outputs never clobber: a run directory that already holds another run's checkpoints is refused unless
`trainer.resume=true` continues that run or `overwrite=true` starts afresh (deleting its checkpoints,
logs and tensorboard events first). That refusal, and every check of the arguments made before the first
step (a missing store, cameras or action size the store lacks, too few episodes, a bad trainer or
action-head option), is a `ConfigError`: one line on stderr and exit code 2 from the CLI.

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
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from action_tokenizers import make_tokenizer
from vla.backbones.config import VLMConfig, vlm_config_from_dict
from vla.backbones.connectors import CONNECTORS
from vla.backbones.vision import VISION_ENCODERS
from vla.commands.model_info import check_model_config
from vla.commands.tokenizer import make_configured_tokenizer
from vla.core.config import (
    ConfigError,
    argument_checks,
    check_number,
    check_path_name,
    compose,
    register_config,
    save_resolved,
    split_positionals,
)
from vla.core.memory import keep_freed_memory
from vla.core.normalizer import Normalizer
from vla.core.types import ACTION_KEY, AUX_KEY, AUX_NAMES, STATE_KEY, colour_key, image_key
from vla.data.augment import SYNONYM_TABLES, InstructionSynonyms
from vla.data.colour_swap import ColourSwap, check_pairs
from vla.data.config import DataConfig, window_spec
from vla.data.mixture import MixtureSource, build_mixture, weigh_frames
from vla.data.store import EpisodeStore
from vla.data.vqa.cotrain import CoTrainConfig, cotrain_config_from_dict
from vla.data.windows import WindowDataset
from vla.models.action_head import check_action_head, check_action_loss
from vla.models.checkpoint import CHECKPOINTS_DIR, CheckpointManager
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
    state_parts: list[str] = field(default_factory=list)  # with use_state: the parts read ([] = all 15 dims)
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
    # > 1 (with action_head=l1): that many hypotheses of the chunk and a score each; the best-scored acts
    action_modes: int = 1
    # the continuous head's training loss (with action_head=l1, one hypothesis): l1 | mse (vla.models.
    # action_head.ACTION_LOSSES); a training option, acting is the same
    action_loss: str = "l1"
    # > 0 (with action_head=l1): also regress where the instruction's object and goal are (aux/scene, from
    # `vla collect aux=true`) from the action query, weighted this much in the loss; a training aid only
    aux_weight: float = 0.0
    # training instructions rephrased with a synonym table (vla/data/augment.py): "" none, "colours"
    instruction_synonyms: str = ""
    instruction_synonym_p: float = 0.5  # the share of training samples rephrased
    # pairs of colours that trade places in a training sample's images and instruction (vla/data/
    # colour_swap.py; stores collected with env.colour_masks=true), e.g. [[red, yellow], [green, purple]]
    colour_swap: list[list[str]] = field(default_factory=list)
    colour_swap_p: float = 0.5  # the chance that one pair swaps in one sample
    # the first early_frames frames of every training episode (the start pose, where the policy chooses
    # where to go) are drawn early_weight times as often as the others (vla.data.mixture.weigh_frames)
    early_frames: int = 0
    early_weight: float = 1.0
    # > 0: every training frame is drawn in proportion to 1 + motion_weight x the size of its x/y action
    # (relative to its store's 99th percentile, capped at 1): the approach and the carry weigh more
    motion_weight: float = 0.0
    # Start afresh in a run directory that holds another run's checkpoints: they, log.jsonl, loss.png and
    # tb/ are deleted first (without it such a directory is refused; trainer.resume=true continues it).
    overwrite: bool = False


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
    with argument_checks("model"):
        model = vlm_config_from_dict(data.pop("model"), where="train config: model")
    cotrain = data.pop("cotrain", None)
    with argument_checks("cotrain"):
        cotrain = None if cotrain is None else cotrain_config_from_dict(cotrain, "train config: cotrain")
    cfg = TrainConfig(
        model=model, cotrain=cotrain, data=DataConfig(**data.pop("data")), trainer=trainer, **data
    )
    if cfg.chunk_len < 1:
        raise ConfigError(f"chunk_len must be >= 1, got {cfg.chunk_len}", key="chunk_len")
    with argument_checks("action_head"):
        check_action_head(cfg.action_head)
    if cfg.cotrain is not None and cfg.action_head != "tokens":
        raise ConfigError(
            "VQA co-training needs action tokens (action_head=tokens), not action_head=l1", key="action_head"
        )
    if cfg.action_modes < 1 or (cfg.action_modes > 1 and cfg.action_head != "l1"):
        raise ConfigError(
            f"action_modes must be >= 1, and > 1 only with action_head=l1; got {cfg.action_modes} with "
            f"action_head={cfg.action_head}",
            "action_modes",
        )
    with argument_checks("action_loss"):
        check_action_loss(cfg.action_loss)
    if cfg.action_loss != "l1" and (cfg.action_head != "l1" or cfg.action_modes > 1):
        raise ConfigError(
            f"action_loss={cfg.action_loss} needs action_head=l1 with action_modes=1; got action_head="
            f"{cfg.action_head}, action_modes={cfg.action_modes}",
            "action_loss",
        )
    if cfg.early_frames < 0 or not cfg.early_weight > 0:
        raise ConfigError(
            f"early_frames must be >= 0 and early_weight > 0, got {cfg.early_frames} and {cfg.early_weight}",
            "early_frames" if cfg.early_frames < 0 else "early_weight",
        )
    if not cfg.motion_weight >= 0:
        raise ConfigError(f"motion_weight must be >= 0, got {cfg.motion_weight}", "motion_weight")
    if cfg.action_label_sigma > 0 and cfg.action_head != "tokens":
        raise ConfigError(
            "action_label_sigma applies to action tokens, not action_head=l1", "action_label_sigma"
        )
    if cfg.overwrite and cfg.trainer.resume:
        raise ConfigError(
            "trainer.resume=true continues a run and overwrite=true deletes it: choose one", key="overwrite"
        )
    for key, value in (
        ("data.path", cfg.data.path),
        ("out", cfg.out),
        ("trainer.out_dir", cfg.trainer.out_dir),
    ):
        if not value and key != "data.path":  # "" is the current directory, never the run meant
            raise ConfigError(f"{key}: expected a directory path, got ''", key)
        check_path_name(value, key)
    for key in ("val_episodes", "threads", "procs"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{key} must be >= 0, got {getattr(cfg, key)}", key)
    check_number(cfg.action_label_sigma, "action_label_sigma", 0, 1000)  # in bins; 0: hard labels
    check_number(cfg.instruction_synonym_p, "instruction_synonym_p", 0, 1)
    check_number(cfg.colour_swap_p, "colour_swap_p", 0, 1)
    if cfg.instruction_synonyms and cfg.instruction_synonyms not in SYNONYM_TABLES:
        raise ConfigError(
            f"unknown instruction_synonyms {cfg.instruction_synonyms!r}; expected '' or one of "
            f"{sorted(SYNONYM_TABLES)}",
            "instruction_synonyms",
        )
    if not cfg.cameras:
        raise ConfigError("cameras: expected at least one camera (e.g. cameras=[static])", "cameras")
    if cfg.data.n_action < 1:  # chunk_len sets it below
        raise ConfigError(f"data.n_action must be >= 1, got {cfg.data.n_action}", "data.n_action")
    make_configured_tokenizer(cfg.tokenizer)  # every tokenizer option in range (one line naming it),
    cfg.tokenizer = {**cfg.tokenizer, "chunk_len": cfg.chunk_len}  # before chunk_len replaces its own
    make_configured_tokenizer(cfg.tokenizer)
    cfg.data = dataclasses.replace(cfg.data, n_action=cfg.chunk_len)
    return cfg


def check_store(path: str, cfg: TrainConfig, action_dim: int, key: str = "data.path") -> EpisodeStore:
    """Every feature the model needs is in the store, with the right shape: else a ConfigError (one line,
    exit 2) naming the store and the setting that does not fit it (`key`: the argument that named it)."""
    if not Path(path).exists():
        raise ConfigError(f"training store not found: {path} (collect one: vla collect out={path})", key)
    with argument_checks(key):
        store = EpisodeStore.open(path)
    feats = store.features
    for cam in cfg.cameras:
        if image_key(cam) not in feats:
            have = sorted(k for k in feats if k.startswith("images/"))
            raise ConfigError(
                f"{path}: cameras={cfg.cameras} but the store has no {image_key(cam)!r} ({have})", "cameras"
            )
    if ACTION_KEY not in feats or tuple(feats[ACTION_KEY].shape) != (action_dim,):
        got = tuple(feats[ACTION_KEY].shape) if ACTION_KEY in feats else None
        raise ConfigError(
            f"{path}: {ACTION_KEY!r} has shape {got} but the action tokenizer expects ({action_dim},) "
            f"(tokenizer.action_dim)",
            key="tokenizer.action_dim",
        )
    if cfg.use_state and STATE_KEY not in feats:
        raise ConfigError(f"{path}: use_state=true but the store has no {STATE_KEY!r} feature", "use_state")
    if cfg.aux_weight < 0:
        raise ConfigError(f"aux_weight must be >= 0, got {cfg.aux_weight}", "aux_weight")
    if cfg.aux_weight > 0 and cfg.action_head != "l1":
        raise ConfigError(
            f"aux_weight={cfg.aux_weight} needs action_head=l1 (the head reads its query)", "aux_weight"
        )
    if cfg.aux_weight > 0 and (AUX_KEY not in feats or tuple(feats[AUX_KEY].shape) != (len(AUX_NAMES),)):
        raise ConfigError(
            f"{path}: aux_weight={cfg.aux_weight} needs the {AUX_KEY!r} feature [{len(AUX_NAMES)}] "
            f"(record it with vla collect aux=true); the store has {sorted(feats)}",
            "aux_weight",
        )
    if cfg.state_parts:
        if not cfg.use_state:
            raise ConfigError("state_parts selects parts of the state, but use_state=false", "use_state")
        width = int(feats[STATE_KEY].shape[0])
        try:
            ProcessorConfig(state_parts=list(cfg.state_parts), state_dim=width).check()
        except ValueError as e:
            raise ConfigError(f"{path}: {e}", "state_parts") from None
    if cfg.colour_swap:
        store_palette(path, store, cfg)
    if store.num_episodes == 0:
        raise ConfigError(f"{path}: the store has no episodes", key)
    return store


def store_palette(path: str, store: EpisodeStore, cfg: TrainConfig) -> list[Any]:
    """The palette of the store's colour maps, which `colour_swap` needs for every camera: else a
    ConfigError naming the store, the missing feature and how to record it."""
    palettes = []
    for cam in cfg.cameras:
        spec = store.features.get(colour_key(cam))
        if spec is None or "palette" not in spec.info:
            raise ConfigError(
                f"{path}: colour_swap needs the per-pixel colour map {colour_key(cam)!r} [H,W] with its "
                "palette (record it with vla collect env.colour_masks=true)",
                "colour_swap",
            )
        palettes.append(spec.info["palette"])
    if any(p != palettes[0] for p in palettes):
        raise ConfigError(f"{path}: the cameras' colour maps have different palettes", "colour_swap")
    with argument_checks("colour_swap"):
        check_pairs(cfg.colour_swap, [str(e[0]) for e in palettes[0]])
    return list(palettes[0])


def _split_episodes(store: EpisodeStore, cfg: TrainConfig) -> tuple[list[int], list[int]]:
    """The matching episodes of the first store as (train, validation): the last `val_episodes` validate."""
    chosen = store.select(task=cfg.data.task, success=cfg.data.success, split=cfg.data.split)
    if len(chosen) <= cfg.val_episodes:
        raise ConfigError(
            f"{cfg.data.path}: {len(chosen)} matching episodes, but val_episodes={cfg.val_episodes} are held "
            "out; collect more or set val_episodes=0",
            key="val_episodes",
        )
    n_val = cfg.val_episodes
    return chosen[: len(chosen) - n_val], chosen[len(chosen) - n_val :]


def check_inputs(cfg: TrainConfig) -> None:
    """Everything checkable before a process starts or a batch is read: the trainer's options, every
    store (features, episodes, the validation split). A problem is one ConfigError line (exit 2)."""
    with argument_checks("trainer"):
        Trainer(cfg.trainer)
    for key, name, table in (
        ("model.vision.name", cfg.model.vision.name, VISION_ENCODERS),
        ("model.connector.name", cfg.model.connector.name, CONNECTORS),
    ):
        if name not in table:
            raise ConfigError(f"unknown {table.kind} {name!r}; expected one of {table.names()}", key=key)
    check_model_config(cfg.model)
    action_dim = int(cfg.tokenizer.get("action_dim", 7))
    _split_episodes(check_store(cfg.data.path, cfg, action_dim), cfg)
    for m in cfg.mixture:
        if "path" not in m:
            raise ConfigError(f"mixture entry {m}: missing 'path'", key="mixture")
        check_store(str(m["path"]), cfg, action_dim, key="mixture")


# What a training run writes into its directory (config.yaml is rewritten by every run anyway).
RUN_OUTPUTS = (CHECKPOINTS_DIR, "tb", "log.jsonl", "loss.png")


def prepare_output(cfg: TrainConfig, clear: bool = True) -> None:
    """LeRobot's rule for the run directory `trainer.out_dir`: one that holds another run's checkpoints is
    refused (a ConfigError naming it and both ways on) unless trainer.resume=true continues that run or
    overwrite=true starts afresh, which deletes the old run's outputs (RUN_OUTPUTS) when `clear`."""
    out = Path(cfg.trainer.out_dir)
    held = CheckpointManager.of_run(out).step_dirs()
    if not held or cfg.trainer.resume:
        return
    if not cfg.overwrite:
        raise ConfigError(
            f"{out} already holds another run's checkpoints ({held[-1].name}): pass trainer.resume=true "
            "to continue that run or overwrite=true to start afresh (deleting them), or choose another out=",
            key="out",
            kind="output-exists",
        )
    if clear:
        print(f"[train] overwrite=true: deleting the previous run's checkpoints and logs in {out}")
        for name in RUN_OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()


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
    if cfg.colour_swap:  # the colour maps travel with the images to the augmentation, which drops them
        keys += [colour_key(c) for c in cfg.cameras]
    modes = dict(cfg.data.normalization)
    if cfg.aux_weight > 0:  # the auxiliary target is read with the observations and normalised like them
        keys.append(AUX_KEY)
        modes.setdefault(AUX_KEY, "meanstd")
    points = point_training_setup(cfg.model, store)  # clouds the model's point encoders need (3D-VLA)
    spec.obs_keys, spec.goal_cloud = keys + points.obs_keys, points.goal_source
    train_eps, val_eps = _split_episodes(store, cfg)
    sources = [MixtureSource(cfg.data.path, 1.0, train_eps)]
    for m in cfg.mixture:
        if "path" not in m:
            raise ConfigError(f"mixture entry {m}: missing 'path'", key="mixture")
        mstore = check_store(str(m["path"]), cfg, action_dim, key="mixture")
        sources.append(
            MixtureSource(str(m["path"]), float(m.get("weight", 1.0)), list(range(mstore.num_episodes)))
        )
    if len(sources) == 1:
        # one store: plain windows, statistics of that store
        norm = store.normalizer(modes)
        train = WindowDataset(cfg.data.path, spec, episodes=train_eps)
        weights = None
    else:
        train, weights, norm = build_mixture(sources, spec, modes)
    if (cfg.early_frames > 0 and cfg.early_weight != 1.0) or cfg.motion_weight > 0:
        with argument_checks("motion_weight"):  # a store whose actions do not name dx, dy
            weights = weigh_frames(train, weights, cfg.early_frames, cfg.early_weight, cfg.motion_weight)
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
            state_parts=list(cfg.state_parts) if cfg.use_state else [],
            n_obs=cfg.data.n_obs,
            prompt=cfg.prompt,
            vocab_mode=cfg.vocab_mode,
            **point_training_setup(cfg.model, EpisodeStore.open(cfg.data.path)).processor_fields,
        )
        torch.manual_seed(tcfg.seed)  # identical initial weights for the same seed
        aux_dim = len(AUX_NAMES) if cfg.aux_weight > 0 else 0
        model = VLA.build(
            cfg.model,
            pcfg,
            tok,
            norm,
            action_head=cfg.action_head,
            aux_dim=aux_dim,
            action_modes=cfg.action_modes,
        )
    model.set_action_label_sigma(cfg.action_label_sigma)  # a training option, re-applied on resume
    model.set_action_loss(cfg.action_loss)  # likewise
    if model.aux_head is not None and cfg.aux_weight <= 0:
        msg = f"{latest}: the run trains an auxiliary head; resume it with its aux_weight"
        raise ConfigError(msg, "aux_weight")
    with argument_checks("aux_weight"):
        model.set_aux_weight(cfg.aux_weight)
    resolved = {"train": OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)}
    n_params = sum(p.numel() for p in model.parameters())
    rank = int(os.environ.get("RANK", "0"))
    if rank == 0:
        print(
            f"[train] VLA {n_params / 1e6:.2f} M params, {len(train)} train windows"
            f"{f', {len(val)} val windows' if val is not None else ''}, chunk {cfg.chunk_len}, "
            f"cameras {cfg.cameras}, state {cfg.use_state}, tokenizer {model.processor.action_tokenizer.name}"
        )
    collate = model.processor.collate
    augs: list[Any] = []
    if cfg.colour_swap:  # before the synonyms: it swaps the colour words the synonyms would replace
        palette = store_palette(cfg.data.path, EpisodeStore.open(cfg.data.path), cfg)
        augs.append(ColourSwap(cfg.colour_swap, palette, cfg.colour_swap_p, tcfg.seed + rank))
    if cfg.instruction_synonyms:
        augs.append(
            InstructionSynonyms(
                SYNONYM_TABLES[cfg.instruction_synonyms], cfg.instruction_synonym_p, tcfg.seed + rank
            )
        )
    if augs:
        collate = _AugmentedCollate(augs, model.processor.collate)
    fit_kw = {
        "collate_fn": collate,
        "checkpoint_contents": lambda sd: model.checkpoint_contents(sd, extra_config=resolved),
        "load_model": lambda m, d: m.load_weights(d),
        "sample_weights": weights,
    }
    fit_model = model
    if cfg.cotrain is not None:  # robot windows + VQA samples in every batch (vla.training.mixture)
        fit_model, train, fit_kw = cotrain_fit(cfg.cotrain, model, train, tcfg, **fit_kw)
    return trainer.fit(fit_model, train, val, **fit_kw)


class _AugmentedCollate:
    """The processor's collate after the training augmentations, in order (vla.data.colour_swap,
    vla.data.augment). The trainer collates its validation batches with it too, so validation losses
    include swapped colours and rephrased instructions."""

    def __init__(self, augs: Sequence[Any], collate: Any):
        self.augs, self.collate = list(augs), collate

    def __call__(self, samples: Any) -> Any:
        for aug in self.augs:
            samples = aug(samples)
        return self.collate(samples)


def local_ranks(cfg: TrainConfig) -> int:
    """Local data-parallel ranks for `cfg` (vla.training.distributed.local_world_size; 1 with
    trainer.strategy=none)."""
    if cfg.trainer.strategy == "none":
        return 1
    return local_world_size(cfg.procs, cfg.trainer.batch_size, cfg.trainer.steps)


def main(argv: Sequence[str]) -> int:
    cfg = load_config(argv)
    check_inputs(cfg)  # bad arguments fail here, before anything is written or any process starts
    is_main = int(os.environ.get("RANK", "0")) == 0
    prepare_output(cfg, clear=is_main)  # the refusal on every rank; only rank 0 deletes
    world = local_ranks(cfg)
    if is_main:
        save_resolved(OmegaConf.structured(cfg), cfg.out)
    if world > 1:  # one rank per core, batch split (docs/training.md, "Training throughput")
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

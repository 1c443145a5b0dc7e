"""`vla tokenizer fit` and `vla tokenizer report`: fit a tokenizer on recorded actions, measure it.

    vla tokenizer fit outputs/demos tokenizer=fast out=outputs/tok            # store -> tokenizer
    vla tokenizer fit actions.npy tokenizer=openvla tokenizer.chunk_len=1
    vla tokenizer report outputs/tok/action_tokenizer.json outputs/demos

The source is an episode store directory (`vla.data.store.EpisodeStore`) or a .npy ([E, T, D] episodes or
[N, D] one trajectory) / .npz (one array per episode) file of raw actions. `fit` computes the dataset
q99 Normalizer (or reads `normalizer=<normalizer.json>`), fits the tokenizer on windows of `chunk_len`
steps from all but a `holdout` fraction of episodes, writes `<out>/action_tokenizer.json` and
`<out>/normalizer.json`, and reports on the held-out episodes. `report` loads both and prints
reconstruction error per dimension, tokens per chunk and throughput (and writes JSON with `json_out=`).
A bad argument (a source or tokenizer file that does not exist, an unknown tokenizer option, actions of
another dimension) is a `ConfigError`: one line, exit code 2. `fit` into an `out` holding another fit, or
`report` onto an existing `json_out`, is refused unless `overwrite=true`.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from action_tokenizers.base import (
    ActionTokenizer,
    TokenizerArgumentError,
    get_tokenizer_class,
    load_tokenizer,
)
from action_tokenizers.evaluation import TokenizerPipeline, chunk_episodes, evaluate, fit_normalizer
from vla.core.config import (
    ConfigError,
    argument_checks,
    check_path_name,
    compose,
    register_config,
    split_positionals,
)
from vla.core.io import atomic_write_json
from vla.core.normalizer import Normalizer
from vla.core.types import ACTION_KEY, ACTION_NAMES
from vla.data.store import EpisodeStore
from vla.models.checkpoint import ACTION_TOKENIZER_FILE, NORMALIZER_FILE


@register_config("tokenizer_fit")
@dataclasses.dataclass
class TokenizerFitConfig:
    source: str = "???"  # episode store dir, .npy or .npz of raw actions
    out: str = "outputs/tokenizer"  # directory for action_tokenizer.json + normalizer.json
    tokenizer: dict[str, Any] = dataclasses.field(default_factory=dict)  # configs/tokenizer/<name>.yaml
    normalizer: str = ""  # existing normalizer.json; empty: fit q99 on the source
    stride: int = 0  # window stride in steps; 0: chunk_len (non-overlapping)
    holdout: float = 0.1  # fraction of episodes kept out of fit for the report (0: report on fit data)
    max_episodes: int = 0  # 0: all
    report_window: int = 10  # steps per measured window (1 s at 10 Hz)
    overwrite: bool = False  # replace the files of another fit in `out`


@register_config("tokenizer_report")
@dataclasses.dataclass
class TokenizerReportConfig:
    path: str = "???"  # action_tokenizer.json
    source: str = "???"
    normalizer: str = ""  # default: normalizer.json next to the tokenizer
    report_window: int = 10  # steps per measured window (1 s at 10 Hz)
    max_episodes: int = 0
    json_out: str = ""
    overwrite: bool = False  # replace an existing json_out


def _compose(name: str, overrides: list[str]) -> Any:
    """compose() with hydra/omegaconf errors (unknown group option, bad type, missing value) as ValueError."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = compose(name, overrides)
        OmegaConf.to_container(cfg, throw_on_missing=True)
    except (HydraException, OmegaConfBaseException) as e:
        raise ValueError(f"config {name!r}: {str(e).splitlines()[0]}") from e
    return cfg


def load_episodes(source: str, max_episodes: int = 0) -> list[np.ndarray]:
    """Raw action arrays [T_e, D], one per episode, from a store directory, .npy or .npz."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"action source not found: {path}")
    if path.is_dir():
        eps = _store_episodes(path, max_episodes)
    elif path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
        if arr.ndim == 2:
            eps = [arr]
        elif arr.ndim == 3:
            eps = list(arr)
        else:
            raise ValueError(f"{path}: expected actions [E, T, D] or [N, D], got shape {arr.shape}")
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            eps = [z[k] for k in z.files]
    else:
        raise ValueError(f"{path}: expected an episode store directory, .npy or .npz file")
    eps = eps[:max_episodes] if max_episodes > 0 else eps
    if not eps:
        raise ValueError(f"{path}: no episodes")
    for i, e in enumerate(eps):
        if e.ndim != 2 or e.shape[1] != eps[0].shape[1]:
            raise ValueError(f"{path}: episode {i}: expected {ACTION_KEY} [T, D], got shape {e.shape}")
    return [np.asarray(e, dtype=np.float64) for e in eps]


def check_source(source: str, key: str = "source") -> None:
    """A source that does not exist, or is neither a store nor a .npy/.npz, is a ConfigError (exit 2)."""
    check_path_name(source, key)
    path = Path(source)
    if not path.exists():
        raise ConfigError(f"action source not found: {source}", key, "no-such-path")
    if path.is_dir() and not (path / "zarr.json").is_file():
        raise ConfigError(f"{source}: a directory but no episode store (no zarr.json)", key)
    if path.is_file() and path.suffix not in (".npy", ".npz"):
        raise ConfigError(f"{source}: expected an episode store directory, .npy or .npz file", key)


def make_configured_tokenizer(tok_cfg: dict[str, Any], key: str = "tokenizer") -> ActionTokenizer:
    """The unfitted tokenizer a `tokenizer` config names (`name` plus the class's options). A bad option
    is a ConfigError naming `tokenizer.<option>` and its range (one line, exit 2): an unknown name or
    option, NaN, a fraction, a value out of range (vla tokenizer fit, vla train)."""
    options = dict(tok_cfg)
    name = options.pop("name", None)
    if name is None:
        raise ConfigError(
            f"{key} config needs a 'name' (pick one: {key}=uniform|quantile|openvla|fast)", key, "missing"
        )
    with argument_checks(f"{key}.name", "unknown-choice"):
        cls = get_tokenizer_class(str(name))
    takes = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(options) - set(takes))
    if unknown:
        raise ConfigError(
            f"unknown key '{key}.{unknown[0]}' for {key}={name}; its options are {', '.join(takes)}",
            f"{key}.{unknown[0]}",
            "unknown-key",
        )
    try:
        return cls(**options)
    except TokenizerArgumentError as e:
        raise ConfigError(f"{key}.{e.param} {e.rule}, got {e.value!r}", f"{key}.{e.param}") from e
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{key}={name}: {str(e).splitlines()[0]}", key) from e


def _check_file(path: str, key: str, what: str) -> None:
    check_path_name(path, key)
    if not Path(path).is_file():
        raise ConfigError(f"{what} not found: {path}", key, "no-such-path")


_FIT_FILES = (ACTION_TOKENIZER_FILE, NORMALIZER_FILE, "fit_report.json")


def _store_episodes(path: Path, max_episodes: int) -> list[np.ndarray]:
    from tqdm import tqdm

    store = EpisodeStore.open(path)
    n = store.num_episodes
    n = min(n, max_episodes) if max_episodes > 0 else n
    progress = tqdm(range(n), desc="reading episodes")
    return [np.asarray(store.episode(i, keys=[ACTION_KEY])[ACTION_KEY]) for i in progress]


def print_report(title: str, rep: dict, names: tuple[str, ...]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("dim", "mean |err| (raw)", "max |err| (raw)", "mean |err| (norm)"):
        table.add_column(col, justify="right")
    D = len(rep["mae_raw_per_dim"])
    labels = names if len(names) == D else tuple(f"a{i}" for i in range(D))
    for d in range(D):
        table.add_row(
            labels[d],
            f"{rep['mae_raw_per_dim'][d]:.3g}",
            f"{rep['max_raw_per_dim'][d]:.3g}",
            f"{rep['mae_norm_per_dim'][d]:.3g}",
        )
    console = Console()
    console.print(table)
    console.print(
        f"tokens per {rep['steps_per_window']}-step window: mean {rep['tokens_per_window_mean']:.1f}; "
        f"per {rep['chunk_len']}-step tokenizer chunk: mean {rep['tokens_per_chunk_mean']:.1f} "
        f"(min {rep['tokens_per_chunk_min']}, max {rep['tokens_per_chunk_max']}); vocab {rep['vocab_size']}; "
        f"mean/max error (normalised) {rep['mae_norm']:.4f}/{rep['max_norm']:.4f}; "
        f"invalid decodes {rep['invalid_decodes']} of {rep['chunks']}; "
        f"encode {rep['encode_actions_per_s']:.3g} actions/s, "
        f"decode {rep['decode_actions_per_s']:.3g} actions/s"
    )


def _split(eps: list[np.ndarray], holdout: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    k = int(round(len(eps) * holdout))
    if k == 0 or k == len(eps):
        return eps, eps
    return eps[:-k], eps[-k:]


def measure(pipe: TokenizerPipeline, eps: list[np.ndarray], norm: Normalizer, window: int) -> dict:
    """Evaluate on windows of `window` steps (rounded to a multiple of chunk_len), cut into chunks.

    Adds `steps_per_window` and `tokens_per_window_mean` (tokens a policy emits for one window, e.g. a
    1-s chunk at 10 Hz: 70 for per-step 7-D bin tokenizers).
    """
    T = pipe.tokenizer.chunk_len
    length = max(T, (window // T) * T)
    chunks = chunk_episodes(eps, length).reshape(-1, T, eps[0].shape[1])  # [N * length / T, T, D]
    rep = evaluate(pipe, chunks, norm)
    rep["steps_per_window"] = length
    rep["tokens_per_window_mean"] = rep["tokens_per_chunk_mean"] * (length // T)
    return rep


def fit_main(argv: list[str]) -> int:
    cfg = _compose("tokenizer_fit", split_positionals(argv, ["source"]))
    tok_cfg = OmegaConf.to_container(cfg.tokenizer, resolve=True)
    tok_cfg = tok_cfg if isinstance(tok_cfg, dict) else {}
    make_configured_tokenizer(tok_cfg)  # every option in range, before anything is read
    name = tok_cfg["name"]
    check_source(cfg.source)
    if cfg.normalizer:
        _check_file(cfg.normalizer, "normalizer", "normalizer")
    if not 0.0 <= cfg.holdout < 1.0:
        raise ConfigError(f"holdout must be in [0, 1), got {cfg.holdout}", "holdout")
    for key in ("stride", "max_episodes"):
        if cfg[key] < 0:
            raise ConfigError(f"{key} must be >= 0, got {cfg[key]}", key)
    if cfg.report_window < 1:
        raise ConfigError(f"report_window must be >= 1, got {cfg.report_window}", "report_window")
    if not cfg.out:  # "" is the current directory, never the output meant
        raise ConfigError("out: expected a directory path, got ''", "out")
    check_path_name(cfg.out, "out")
    out = Path(cfg.out)
    held = [f for f in _FIT_FILES if (out / f).exists()]
    if held and not cfg.overwrite:
        raise ConfigError(
            f"out={cfg.out} already holds a fitted tokenizer ({', '.join(held)}): pass overwrite=true to "
            "replace it, or choose another out=",
            "out",
            "output-exists",
        )
    with argument_checks("source"):  # the source's shape: [E, T, D] / [N, D] actions, some episodes
        eps = load_episodes(cfg.source, cfg.max_episodes)
    D = eps[0].shape[1]
    tok_cfg.setdefault("action_dim", D)
    tok = make_configured_tokenizer(tok_cfg)
    if tok.action_dim != D:
        raise ConfigError(
            f"{cfg.source}: actions have D={D}, tokenizer config says action_dim={tok.action_dim}",
            "tokenizer.action_dim",
        )
    fit_eps, eval_eps = _split(eps, cfg.holdout)
    all_rows = np.concatenate(fit_eps, axis=0)  # [M, D]
    norm = Normalizer.load(cfg.normalizer) if cfg.normalizer else fit_normalizer(all_rows)
    pipe = TokenizerPipeline(tok, norm)
    pipe.fit(chunk_episodes(fit_eps, tok.chunk_len, cfg.stride or tok.chunk_len))
    tok.save(out / ACTION_TOKENIZER_FILE)  # the names of a checkpoint, so `report` reads either
    norm.save(out / NORMALIZER_FILE)
    rep = measure(pipe, eval_eps, norm, cfg.report_window)
    atomic_write_json(out / "fit_report.json", {"tokenizer": name, "source": cfg.source, **rep})
    which = "held-out" if eval_eps is not fit_eps else "fit"
    print_report(f"{name} tokenizer on {len(eval_eps)} {which} episodes", rep, ACTION_NAMES)
    print(f"fitted {name} on {sum(len(e) for e in fit_eps)} actions from {len(fit_eps)} episodes -> {out}")
    return 0


def report_main(argv: list[str]) -> int:
    cfg = _compose("tokenizer_report", split_positionals(argv, ["path", "source"]))
    _check_file(cfg.path, "path", "action tokenizer file")
    check_source(cfg.source)
    if cfg.normalizer:
        _check_file(cfg.normalizer, "normalizer", "normalizer")
    if cfg.report_window < 1 or cfg.max_episodes < 0:
        raise ConfigError("report_window must be >= 1 and max_episodes >= 0", "report_window")
    check_path_name(cfg.json_out, "json_out")
    if cfg.json_out and Path(cfg.json_out).exists() and not cfg.overwrite:
        raise ConfigError(
            f"json_out={cfg.json_out} already exists: pass overwrite=true to replace it, or choose another",
            "json_out",
            "output-exists",
        )
    with argument_checks("path"):
        tok = load_tokenizer(cfg.path)
    norm_path = Path(cfg.normalizer) if cfg.normalizer else Path(cfg.path).parent / NORMALIZER_FILE
    with argument_checks("source"):
        eps = load_episodes(cfg.source, cfg.max_episodes)
    if eps[0].shape[1] != tok.action_dim:
        raise ConfigError(
            f"{cfg.source}: actions have D={eps[0].shape[1]}, tokenizer expects {tok.action_dim}", "source"
        )
    if norm_path.is_file():
        norm = Normalizer.load(norm_path)
    elif tok.input_space == "normalized":
        raise ConfigError(
            f"normalizer not found: {norm_path} (the tokenizer expects normalised actions)",
            "normalizer",
            "no-such-path",
        )
    else:
        norm = fit_normalizer(np.concatenate(eps, axis=0))
    rep = measure(TokenizerPipeline(tok, norm), eps, norm, cfg.report_window)
    if cfg.json_out:
        atomic_write_json(cfg.json_out, {"tokenizer": tok.name, "path": cfg.path, **rep})
    print_report(f"{tok.name} tokenizer ({cfg.path}) on {len(eps)} episodes", rep, ACTION_NAMES)
    print(
        json.dumps({k: rep[k] for k in ("tokens_per_window_mean", "mae_norm", "max_norm", "invalid_decodes")})
    )
    return 0

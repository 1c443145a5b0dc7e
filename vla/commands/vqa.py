"""`vla vqa generate` and `vla eval-vqa`: scene-VQA sets from the simulator, and VQA accuracy of a model.

`generate_main` writes a LLaVA-format question set rendered by `sim.scene_vqa`; `eval_main` scores a
VLM or VLA checkpoint (or a predictions file) on such a set with `vla.eval.vqa` (VQAv2 accuracy and
exact match), writing `vqa_results.json` and `predictions.jsonl` under `out`. Both check their arguments
before any work (tasks, split, question types; the question file, checkpoint or predictions exist) and
raise a bad one as a `ConfigError` (one line, exit code 2). An `out` holding another run's set or results
is refused unless `overwrite=true` (the schemas here add that key to the library's configs).

    vla vqa generate outputs/scene_vqa scenes=200
    vla eval-vqa outputs/scene_vqa/test.json checkpoint=outputs/train/cotrain
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sim.scene_vqa import SceneVQAConfig, generate
from sim.tasks import check_split, get_task
from vla.core.config import (
    ConfigError,
    argument_checks,
    check_number,
    check_path_name,
    compose,
    register_config,
    save_resolved,
    shown,
    split_positionals,
    to_dataclass,
)
from vla.eval.vqa import EvalVQAConfig, run


@register_config("vqa_generate_cmd")
@dataclass
class VQAGenerateCommandConfig(SceneVQAConfig):
    """`vla vqa generate [OUT]` (configs/vqa_generate.yaml): SceneVQAConfig plus `overwrite`."""

    overwrite: bool = False  # replace an `out` that holds another set


@register_config("eval_vqa_cmd")
@dataclass
class EvalVQACommandConfig(EvalVQAConfig):
    """`vla eval-vqa` (configs/eval_vqa.yaml): EvalVQAConfig plus `overwrite`."""

    overwrite: bool = False  # replace the results of another run in `out`


def check_generate(cfg: VQAGenerateCommandConfig) -> None:
    """The arguments of `vla vqa generate`, before the simulator starts (ConfigError: exit 2)."""
    with argument_checks("tasks", "unknown-choice"):
        for t in cfg.tasks:
            get_task(t)
    with argument_checks("split", "unknown-choice"):
        check_split(cfg.split)
    try:
        cfg.check()
    except ValueError as e:
        raise ConfigError(str(e).removeprefix("vqa generate: ")) from e
    for key in ("seed", "questions_per_scene"):
        check_number(getattr(cfg, key), key, 0 if key == "seed" else 1)
    for key in ("concept_rate", "test_fraction", "rollout_fraction"):  # NaN passes `0 <= x < 1`
        check_number(getattr(cfg, key), key, 0, 1)
    if not cfg.question_types:
        raise ConfigError(
            "question_types: expected at least one (an empty list asks nothing)", "question_types"
        )
    if not cfg.out:
        raise ConfigError("out: expected a directory path, got ''", "out")
    check_path_name(cfg.out, "out")
    out = Path(cfg.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not cfg.overwrite:
        raise ConfigError(
            f"out={cfg.out} already exists (another scene-VQA set): pass overwrite=true to replace it, or "
            "choose another OUT",
            "out",
            "output-exists",
        )


def generate_main(argv: Sequence[str]) -> int:
    """`vla vqa generate [OUT] scenes=N ...`: write a scene-VQA set in LLaVA format."""
    node = compose("vqa_generate", split_positionals(argv, ["out"]))
    cfg = to_dataclass(node, VQAGenerateCommandConfig)
    check_generate(cfg)
    s = generate(cfg)  # the set is written beside `out` and swapped in: an old one goes only now
    print(
        f"[vqa generate] {s['scenes']} scenes -> {s['train_records']} train / {s['test_records']} test "
        f"records in {s['out']} (LLaVA JSON + PNG; held-out concepts in concepts.json)",
        file=sys.stderr,
    )
    return 0


RESULTS = ("vqa_results.json", "predictions.jsonl")


def check_eval(cfg: EvalVQACommandConfig) -> None:
    """The arguments of `vla eval-vqa`, before a model loads (ConfigError: exit 2)."""
    if (cfg.checkpoint is None) == (cfg.predictions is None):
        raise ConfigError(
            "give exactly one of checkpoint=DIR or predictions=FILE.jsonl", "checkpoint", "missing"
        )
    data = cfg.data
    for key in ("batch_size", "max_new_tokens"):
        check_number(getattr(cfg, key), key, 1)
    if data.max_samples is not None:  # null: all
        check_number(data.max_samples, "data.max_samples", 1)
    if "{question}" not in cfg.prompt_template:
        raise ConfigError(
            f"prompt_template must contain '{{question}}', got {shown(cfg.prompt_template)!r}",
            "prompt_template",
        )
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", cfg.device):
        raise ConfigError(
            f"device: unknown device {shown(cfg.device)!r}; expected cpu, cuda or cuda:N", "device"
        )
    if not cfg.out:  # "" is the current directory, never the output meant
        raise ConfigError("out: expected a directory path, got ''", "out")
    for key in ("checkpoint", "predictions", "out"):
        check_path_name(getattr(cfg, key), key)
    for key in ("path", "annotations", "image_root", "image_pattern"):
        check_path_name(getattr(data, key, None), f"data.{key}")
    for key in ("path", "annotations"):
        path = getattr(data, key, None)
        if path and not Path(path).is_file():
            raise ConfigError(f"data.{key}: file not found: {path}", f"data.{key}", "no-such-path")
    if cfg.checkpoint is not None and not Path(cfg.checkpoint).is_dir():
        raise ConfigError(f"checkpoint directory not found: {cfg.checkpoint}", "checkpoint", "no-such-path")
    if cfg.predictions is not None and not Path(cfg.predictions).is_file():
        raise ConfigError(f"predictions file not found: {cfg.predictions}", "predictions", "no-such-path")
    held = [name for name in RESULTS if (Path(cfg.out) / name).exists()]
    if held and not cfg.overwrite:
        raise ConfigError(
            f"out={cfg.out} already holds another run's results ({', '.join(held)}): pass overwrite=true "
            "to replace them, or choose another out=",
            "out",
            "output-exists",
        )


def eval_main(argv: Sequence[str]) -> int:
    """`vla eval-vqa [DATA_PATH] checkpoint=DIR | predictions=FILE ...`."""
    cfg = to_dataclass(compose("eval_vqa", split_positionals(argv, ["data.path"])), EvalVQACommandConfig)
    check_eval(cfg)
    scores = run(cfg)
    save_resolved(cfg, cfg.out)
    print(scores.table())
    print(f"[eval-vqa] {scores.n} questions -> {Path(cfg.out) / 'vqa_results.json'}", file=sys.stderr)
    return 0

"""`vla vqa generate` and `vla eval-vqa`: scene-VQA sets from the simulator, and VQA accuracy of a model.

`generate_main` writes a LLaVA-format question set rendered by `sim.scene_vqa`; `eval_main` scores a
VLM or VLA checkpoint (or a predictions file) on such a set with `vla.eval.vqa` (VQAv2 accuracy and
exact match), writing `vqa_results.json` and `predictions.jsonl` under `out`.

    vla vqa generate outputs/scene_vqa scenes=200
    vla eval-vqa outputs/scene_vqa/test.json checkpoint=outputs/train/cotrain
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from sim.scene_vqa import SceneVQAConfig, generate
from vla.core.config import compose, save_resolved, split_positionals, to_dataclass
from vla.eval.vqa import EvalVQAConfig, run


def generate_main(argv: Sequence[str]) -> int:
    """`vla vqa generate [OUT] scenes=N ...`: write a scene-VQA set in LLaVA format."""
    cfg = to_dataclass(compose("vqa_generate", split_positionals(argv, ["out"])), SceneVQAConfig)
    s = generate(cfg)
    print(
        f"[vqa generate] {s['scenes']} scenes -> {s['train_records']} train / {s['test_records']} test "
        f"records in {s['out']} (LLaVA JSON + PNG; held-out concepts in concepts.json)",
        file=sys.stderr,
    )
    return 0


def eval_main(argv: Sequence[str]) -> int:
    """`vla eval-vqa [DATA_PATH] checkpoint=DIR | predictions=FILE ...`."""
    cfg = to_dataclass(compose("eval_vqa", split_positionals(argv, ["data.path"])), EvalVQAConfig)
    scores = run(cfg)
    save_resolved(cfg, cfg.out)
    print(scores.table())
    print(f"[eval-vqa] {scores.n} questions -> {Path(cfg.out) / 'vqa_results.json'}", file=sys.stderr)
    return 0

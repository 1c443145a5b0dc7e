"""Benchmark of the scene-VQA data path; prints ONE JSON line.

Generates `--scenes` scenes with `sim.scene_vqa.generate` (all four tasks, default question types and
styles, 30% expert rollouts, 64 px static camera) into a temporary folder, then reads them back with the
LLaVA reader, decodes images through `VQADataset` and collates batches of 32 with `VQACollator` for the
tiny VLM. Figures: scenes/s and records/s of generation, samples/s of reading, of item decoding and of
collation, record counts by question type and style, and the share of records that use a held-out
concept.

    python benchmarks/vqa_generate.py [--scenes 100] [--image-size 64]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from sim.scene_vqa import SceneVQAConfig, generate  # noqa: E402
from vla.backbones import compose_model_config  # noqa: E402
from vla.data.vqa import VQACollator, VQADataset, VQASourceConfig, read_vqa  # noqa: E402
from vla.models import VLM  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=100)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "svqa"
        cfg = SceneVQAConfig(out=str(out), scenes=args.scenes, image_size=args.image_size, seed=args.seed)
        cfg.progress = False
        t0 = time.perf_counter()
        summary = generate(cfg)
        t_gen = time.perf_counter() - t0
        t0 = time.perf_counter()
        samples, _ = read_vqa(VQASourceConfig(format="llava", path=str(out / "train.json")))
        t_read = time.perf_counter() - t0
        ds = VQADataset(samples, task="vqa")
        t0 = time.perf_counter()
        items = [ds[i] for i in range(len(ds))]
        t_items = time.perf_counter() - t0
        vlm = VLM(compose_model_config("tiny"))
        collate = VQACollator(vlm.tokenizer, vlm.vision.transform)
        t0 = time.perf_counter()
        for k in range(0, len(items) - 31, 32):
            collate(items[k : k + 32])
        n_coll = (len(items) // 32) * 32
        t_coll = time.perf_counter() - t0
        records = json.loads((out / "train.json").read_text()) + json.loads((out / "test.json").read_text())
    n = len(records)
    result = {
        "benchmark": "vqa_generate",
        "scenes": args.scenes,
        "image_size": args.image_size,
        "records": n,
        "train_records": summary["train_records"],
        "test_records": summary["test_records"],
        "generate_scenes_per_s": round(args.scenes / t_gen, 2),
        "generate_records_per_s": round(n / t_gen, 1),
        "read_samples_per_s": round(len(samples) / t_read, 1),
        "decode_items_per_s": round(len(items) / t_items, 1),
        "collate_samples_per_s": round(n_coll / max(t_coll, 1e-9), 1),
        "by_question_type": dict(sorted(Counter(r["question_type"] for r in records).items())),
        "by_style": dict(sorted(Counter(r["style"] for r in records).items())),
        "heldout_concept_share": round(sum(bool(r["concepts"]) for r in records) / n, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Benchmark of co-training a tiny VLA on robot windows + scene-VQA; prints ONE JSON line.

Data: `--episodes` scripted-expert pick demonstrations (`vla collect`, static + wrist cameras at 32 px)
and a scene-VQA set (`sim.scene_vqa.generate`, `--scenes` scenes, short answers, 32 px; the first 20% of
the scenes are held out as test questions). Two identical tiny VLAs (same seed, same tokenizer and
normaliser) are trained by the generic Trainer for `--steps` steps at batch `--batch`:

    robot-only   the robot windows alone (VLAProcessor.collate)
    co-trained   MixtureDataset(robot, vqa) with weights 1:1 (RT-2's ~50% robot share), CoTrainLoss

Figures: training throughput (samples/s and steps/s) of both, the final per-task losses, and VQA accuracy
(VQAv2 metric) of both models on the held-out scenes' questions: overall, per question type, and split by
whether a question uses a held-out concept. Single-threaded torch on CPU.

    python benchmarks/vqa_cotrain.py [--steps 300] [--batch 16] [--scenes 150] [--episodes 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sim.scene_vqa import SceneVQAConfig, generate  # noqa: E402
from vla.backbones import compose_model_config  # noqa: E402
from vla.data.config import window_spec  # noqa: E402
from vla.data.store import EpisodeStore  # noqa: E402
from vla.data.vqa import VQASourceConfig, read_vqa  # noqa: E402
from vla.data.vqa.cotrain import CoTrainConfig, CoTrainLoss, VQAMixSource, build_cotrain, cotrain_collator  # noqa: E402
from vla.data.windows import WindowDataset  # noqa: E402
from vla.eval.vqa import predict, score  # noqa: E402
from vla.models.vla import VLA  # noqa: E402
from vla.processor import ProcessorConfig  # noqa: E402
from vla.commands.train import fit_action_tokenizer  # noqa: E402
from vla.training.trainer import Trainer, TrainerConfig  # noqa: E402


def _vla(tok, norm, seed: int) -> VLA:
    torch.manual_seed(seed)
    return VLA.build(compose_model_config("tiny"), ProcessorConfig(cameras=["static", "wrist"]), tok, norm)


def _trainer(out: Path, args) -> Trainer:
    return Trainer(
        TrainerConfig(
            steps=args.steps,
            batch_size=args.batch,
            lr=3e-3,
            warmup_steps=20,
            out_dir=str(out),
            progress=False,
            log_every=max(args.steps // 5, 1),
            keep_last=1,
        )
    )


def _vqa_scores(vla: VLA, test) -> dict:
    """VQA accuracy of a VLA's VLM on the held-out questions, prompted with the co-training task tag."""
    preds = predict(vla.vlm, test, task="vqa", max_new_tokens=6)
    s = score(test, preds)

    def sub(keep) -> float | None:
        ix = [i for i, x in enumerate(test) if bool(x.meta.get("concepts")) == keep]
        return round(score([test[i] for i in ix], [preds[i] for i in ix]).accuracy, 3) if ix else None

    return {
        "vqa_accuracy": round(s.accuracy, 3),
        "vqa_exact_match": round(s.exact_match, 3),
        "vqa_acc_heldout_concepts": sub(True),
        "vqa_acc_no_heldout_concepts": sub(False),
        "vqa_acc_per_type": {
            k: round(v["accuracy"], 3) for k, v in sorted(s.groups["question_type"].items())
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--scenes", type=int, default=150)
    ap.add_argument("--episodes", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from vla.commands.collect import main as collect

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store_path = tmp / "pick.zarr"
        collect_args = ["task=pick", f"episodes={args.episodes}", "env.image_size=32", "env.depth=false"]
        assert collect([*collect_args, f"out={store_path}"]) == 0
        svqa = tmp / "svqa"
        generate(
            SceneVQAConfig(out=str(svqa), scenes=args.scenes, image_size=32, styles=["short"], progress=False)
        )
        store = EpisodeStore.open(store_path)
        norm = store.normalizer({"action": "q99", "state": "meanstd"})
        actions = [np.asarray(store.episode(i, keys=["action"])["action"]) for i in range(store.num_episodes)]
        tok = fit_action_tokenizer({"name": "uniform", "chunk_len": 1}, actions, norm)
        spec = window_spec({"n_obs": 1, "n_action": 1, "obs_keys": None, "image_size": None})
        spec.obs_keys = ["images/static", "images/wrist", "state"]
        robot = WindowDataset(store_path, spec)
        test, _ = read_vqa(VQASourceConfig(format="llava", path=str(svqa / "test.json")))
        test = [s for s in test if s.question_type != "caption"]  # free-form captions: not VQA-scored

        robot_only = _vla(tok, norm, 0)
        r1 = _trainer(tmp / "robot", args).fit(robot_only, robot, collate_fn=robot_only.processor.collate)

        cfg = CoTrainConfig(vqa=[VQAMixSource(source=VQASourceConfig(path=str(svqa / "train.json")))])
        mix, schedule = build_cotrain(cfg, robot)
        cotrained = _vla(tok, norm, 0)
        vlm = cotrained.vlm
        collate = cotrain_collator(cfg, cotrained.processor.collate, vlm.tokenizer, vlm.vision.transform, 15)
        r2 = _trainer(tmp / "mix", args).fit(
            CoTrainLoss(cotrained),
            mix,
            collate_fn=collate,
            sample_weights=mix.sample_weights(schedule.weights_at(0)),
        )
        log = tmp / "mix" / "log.jsonl"
        logs = [json.loads(x) for x in log.read_text().splitlines()] if log.is_file() else []
        scores = {"robot_only": _vqa_scores(robot_only, test), "cotrained": _vqa_scores(cotrained, test)}
    result = {
        "benchmark": "vqa_cotrain",
        "steps": args.steps,
        "batch": args.batch,
        "robot_windows": len(robot),
        "vqa_train_samples": len(mix) - len(robot),
        "vqa_test_questions": len(test),
        "robot_only": {
            "samples_per_s": round(r1.samples_per_s, 1),
            "final_loss": round(r1.final_loss, 4),
            **scores["robot_only"],
        },
        "cotrained": {
            "samples_per_s": round(r2.samples_per_s, 1),
            "final_loss": round(r2.final_loss, 4),
            "last_logged": logs[-1] if logs else None,
            **scores["cotrained"],
        },
        "throughput_ratio_mix_vs_robot": round(r2.samples_per_s / max(r1.samples_per_s, 1e-9), 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

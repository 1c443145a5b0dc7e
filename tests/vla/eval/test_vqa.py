"""VQA evaluation: VQAv2 normalisation and accuracy on hand-made predictions with known scores (also through
`vla eval-vqa predictions=...` on a VQAv2 fixture), and a tiny VLM co-trained by the generic Trainer on a
weighted mixture of generated scene-VQA sources, then scored by `vla eval-vqa checkpoint=...`."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sim.scene_vqa import SceneVQAConfig, generate
from vla.backbones import compose_model_config
from vla.cli import main as cli
from vla.data.mixture import MixtureCollator, MixtureDataset, Source
from vla.data.vqa import VQACollator, VQADataset, VQASourceConfig, read_vqa
from vla.data.vqa.cotrain import CoTrainLoss
from vla.eval.vqa import EvalVQAConfig, exact_match, normalize_answer, run, score, vqa_accuracy
from vla.models import VLM
from vla.training.trainer import Trainer, TrainerConfig


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("Two", "2"),
        ("The red cube.", "red cube"),
        ("yes!", "yes"),
        ("1,000", "1000"),
        ("3.5", "3.5"),
        ("a dog, a cat", "dog cat"),
        ("dont know", "don't know"),
        ("  Left\tside ", "left side"),
        ("black/white", "black white"),
        ("ten (10)", "10 10"),
    ],
)
def test_normalisation(raw, norm):
    assert normalize_answer(raw) == norm


def test_vqa_accuracy_known_values():
    refs = ["red"] * 4 + ["pink"] * 3 + ["maroon"] * 2 + ["blue"]
    assert vqa_accuracy("red", refs) == pytest.approx(1.0)
    assert vqa_accuracy("Pink.", refs) == pytest.approx(0.9)
    assert vqa_accuracy("the maroon", refs) == pytest.approx(0.6)
    assert vqa_accuracy("blue", refs) == pytest.approx(0.3)
    assert vqa_accuracy("green", refs) == 0.0
    assert exact_match("RED", refs) == 1.0 and exact_match("pink", refs) == 0.0
    assert vqa_accuracy("two", ["2"]) == 1.0  # a single reference: a match is full credit
    with pytest.raises(ValueError, match="no reference answers"):
        vqa_accuracy("x", [])


def _vqav2(tmp_path):
    img = tmp_path / "val2014"
    img.mkdir()
    qs, anns = [], []
    human = [
        ("what color is the", "other", ["red"] * 10),
        ("how many", "number", ["2"] * 6 + ["3"] * 4),
        ("is the", "yes/no", ["yes"] * 9 + ["no"]),
    ]
    for i, (qtype, atype, answers) in enumerate(human):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(img / f"COCO_val2014_{i:012d}.jpg")
        qs.append({"image_id": i, "question": f"q{i}?", "question_id": 100 + i})
        anns.append(
            {
                "question_id": 100 + i,
                "image_id": i,
                "question_type": qtype,
                "answer_type": atype,
                "multiple_choice_answer": answers[0],
                "answers": [{"answer": a, "answer_id": k + 1} for k, a in enumerate(answers)],
            }
        )
    (tmp_path / "q.json").write_text(json.dumps({"data_subtype": "val2014", "questions": qs}))
    (tmp_path / "a.json").write_text(json.dumps({"annotations": anns}))
    return tmp_path


def test_eval_vqa_cli_scores_handmade_predictions(tmp_path, capsys):
    root = _vqav2(tmp_path)
    preds = [
        {"id": "100", "prediction": "Red"},
        {"id": "101", "prediction": "three"},
        {"id": "102", "prediction": "no"},
    ]
    (root / "p.jsonl").write_text("\n".join(json.dumps(p) for p in preds) + "\n")
    args = [
        "data=vqa_vqav2",
        f"data.path={root / 'q.json'}",
        f"data.annotations={root / 'a.json'}",
        f"data.image_root={root / 'val2014'}",
        f"predictions={root / 'p.jsonl'}",
        f"out={root / 'out'}",
    ]
    assert cli(["eval-vqa", *args]) == 0
    res = json.loads((root / "out" / "vqa_results.json").read_text())
    # red: 1.0; "three" vs 4 of 10 humans: 1.0; "no" vs 1 of 10: 0.3
    assert res["accuracy"] == pytest.approx(2.3 / 3) and res["exact_match"] == pytest.approx(1 / 3)
    assert res["groups"]["answer_type"]["yes/no"]["accuracy"] == pytest.approx(0.3)
    assert res["groups"]["question_type"]["how many"]["exact_match"] == 0.0
    assert "VQA accuracy 76.7%" in capsys.readouterr().out
    (root / "p.jsonl").write_text(json.dumps(preds[0]) + "\n")
    assert cli(["eval-vqa", *args]) == 2  # out= holds the first run's results: refused, not overwritten
    assert "overwrite=true" in capsys.readouterr().err
    assert cli(["eval-vqa", *args, "overwrite=true"]) == 1
    assert "no prediction for 2 samples" in capsys.readouterr().err
    with pytest.raises(ValueError, match="exactly one of checkpoint"):
        run(EvalVQAConfig(data=VQASourceConfig(path="x"), checkpoint="a", predictions="b"))


@pytest.fixture
def one_thread():
    """Two CPU cores are shared by parallel jobs here: one intra-op thread is ~7x faster for a tiny model."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_tiny_vlm_cotrained_on_scene_vqa_scores_through_eval_vqa(tmp_path, capsys, one_thread):
    kinds = ["colour", "count", "exists"]
    out = tmp_path / "svqa"
    generate(
        SceneVQAConfig(
            out=str(out),
            scenes=6,
            tasks=["pick", "stack"],
            styles=["short"],
            question_types=kinds,
            questions_per_scene=3,
            test_fraction=0.0,
            concept_rate=0.0,
            progress=False,
            image_size=32,
        )
    )
    samples, _ = read_vqa(VQASourceConfig(format="llava", path=str(out / "train.json")))
    torch.manual_seed(0)
    vlm = VLM(compose_model_config("tiny"))
    collate = VQACollator(vlm.tokenizer, vlm.vision.transform, use_task_tag=False)
    half = len(samples) // 2
    mix = MixtureDataset(
        [Source("vqa", VQADataset(samples[:half])), Source("vqa2", VQADataset(samples[half:]))]
    )
    trainer = Trainer(
        TrainerConfig(
            steps=120,
            batch_size=16,
            lr=5e-3,
            warmup_steps=5,
            out_dir=str(tmp_path / "run"),
            progress=False,
            log_every=50,
            keep_last=1,
        )
    )
    result = trainer.fit(
        CoTrainLoss(vlm),
        mix,
        collate_fn=MixtureCollator({"vqa": collate, "vqa2": collate}),
        sample_weights=mix.sample_weights(),
    )
    assert result.status == "done", result.message
    vlm.save_pretrained(tmp_path / "vlm")
    args = [
        str(out / "train.json"),
        f"checkpoint={tmp_path / 'vlm'}",
        f"out={tmp_path / 'ev'}",
        "progress=false",
    ]
    assert cli(["eval-vqa", *args]) == 0
    res = json.loads((tmp_path / "ev" / "vqa_results.json").read_text())
    assert res["n"] == len(samples) and set(res["groups"]["question_type"]) <= set(kinds)
    assert res["accuracy"] >= 0.55, capsys.readouterr().out
    # An untrained model of the same shape scores far lower on the same questions.
    torch.manual_seed(1)
    fresh = VLM(compose_model_config("tiny"))
    fresh.save_pretrained(tmp_path / "fresh")
    base = run(
        EvalVQAConfig(
            data=VQASourceConfig(path=str(out / "train.json")),
            checkpoint=str(tmp_path / "fresh"),
            out=str(tmp_path / "ev0"),
            progress=False,
        )
    )
    assert base.accuracy <= 0.2 and res["accuracy"] - base.accuracy >= 0.4, (base.accuracy, res["accuracy"])
    assert score(samples, [s.answers[0] for s in samples]).accuracy == 1.0


def test_eval_vqa_runs_the_vlm_inside_a_vla_checkpoint(tmp_path, one_thread):
    from action_tokenizers import make_tokenizer
    from vla.core.normalizer import Normalizer, compute_stats
    from vla.eval.vqa import load_model
    from vla.models.vla import VLA
    from vla.processor import ProcessorConfig

    rng = np.random.default_rng(0)
    acts = (rng.standard_normal((64, 7)) * 0.05).astype(np.float32)
    norm = Normalizer(
        {"action": compute_stats(acts), "state": compute_stats(rng.standard_normal((64, 15)))},
        {"action": "q99", "state": "meanstd"},
    )
    tok = make_tokenizer("uniform", action_dim=7, chunk_len=1).fit(acts.reshape(-1, 1, 7))
    torch.manual_seed(0)
    vla = VLA.build(compose_model_config("tiny"), ProcessorConfig(cameras=["static", "wrist"]), tok, norm)
    vla.save_pretrained(tmp_path / "vla")
    vlm = load_model(tmp_path / "vla")
    assert vlm.state_encoder is not None  # VQA questions get a zero state
    root = _vqav2(tmp_path)
    data = VQASourceConfig(
        format="vqav2",
        path=str(root / "q.json"),
        annotations=str(root / "a.json"),
        image_root=str(root / "val2014"),
    )
    scores = run(
        EvalVQAConfig(data=data, checkpoint=str(tmp_path / "vla"), out=str(tmp_path / "ev"), max_new_tokens=4)
    )
    assert scores.n == 3 and 0.0 <= scores.accuracy <= 1.0
    lines = (tmp_path / "ev" / "predictions.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["100", "101", "102"]

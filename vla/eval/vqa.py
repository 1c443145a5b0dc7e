"""`vla eval-vqa`: VQAv2 accuracy and exact match of a VLM (or a VLA's VLM) on held-out questions.

Metrics follow the VQAv2 evaluation: answers are normalised (lower case; the official punctuation set
removed or turned into spaces; a period kept only before a digit; number words to digits; articles
a/an/the dropped; common contractions restored), and a prediction scores min(#humans who gave it / 3, 1)
averaged over the ten leave-one-annotator-out subsets of the references (so 4 or more matching humans out
of 10 give 1.0, 3 give 0.9, 2 give 0.6, 1 gives 0.3). References are normalised too (a no-op on VQAv2's
already-normalised annotations); a sample with a single reference scores 1.0 on a match. Exact match
compares the normalised prediction with the most common reference.
Both are reported overall, per question type, per answer type, per response style and per held-out
concept (the scene-VQA generator's `concepts`).

The model greedily answers each sample's last question (earlier turns as context) through
`VQACollator.generation_inputs`; the answer is the text up to EOS or the first newline. Instead of a
checkpoint, `predictions=FILE` (JSONL of {"id", "prediction"}) scores answers of any external model.
With `task=auto` (the default) a VLA co-trained by `vla train +data@cotrain=...` is prompted exactly as in
training: its first VQA source's task identifier and prompt template, read from the checkpoint's
config.json; other checkpoints get no identifier.

    vla eval-vqa checkpoint=outputs/vlm data.path=outputs/scene_vqa/test.json out=outputs/eval_vqa
    vla eval-vqa data=vqa_vqav2 data.path=Q.json data.annotations=A.json predictions=preds.jsonl
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla.core.config import register_config
from vla.core.io import atomic_write_json, atomic_write_text
from vla.data.vqa.config import VQAPromptConfig, VQASourceConfig
from vla.data.vqa.dataset import VQACollator, VQADataset
from vla.data.vqa.readers import read_vqa
from vla.data.vqa.sample import VQASample
from vla.models.checkpoint import VLA_TYPE, VLM_TYPE, Checkpoint
from vla.models.vla import VLA
from vla.models.vlm import VLM

NUMBERS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}
ARTICLES = {"a", "an", "the"}
CONTRACTIONS = {
    "arent": "aren't",
    "cant": "can't",
    "couldnt": "couldn't",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hasnt": "hasn't",
    "havent": "haven't",
    "isnt": "isn't",
    "its": "it's",
    "shouldnt": "shouldn't",
    "thats": "that's",
    "theres": "there's",
    "theyre": "they're",
    "wasnt": "wasn't",
    "werent": "weren't",
    "whats": "what's",
    "wont": "won't",
    "wouldnt": "wouldn't",
    "youre": "you're",
}
PUNCT = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)
_COMMA_IN_NUMBER = re.compile(r"(\d)(,)(\d)")
_PERIOD_NOT_IN_NUMBER = re.compile(r"\.(?!\d)")  # as the official regex behaves: a period not before a digit


def normalize_answer(text: str) -> str:
    """VQAv2 answer normalisation (see the module docstring)."""
    t = " ".join(str(text).replace("\n", " ").replace("\t", " ").strip().lower().split())
    has_number_comma = _COMMA_IN_NUMBER.search(t) is not None
    for p in PUNCT:
        if f"{p} " in t or f" {p}" in t or has_number_comma:
            t = t.replace(p, "")
        else:
            t = t.replace(p, " ")
    t = _PERIOD_NOT_IN_NUMBER.sub("", t)
    words = [NUMBERS.get(w, w) for w in t.split()]
    words = [CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES]
    return " ".join(words)


def vqa_accuracy(prediction: str, references: Sequence[str]) -> float:
    """VQAv2 accuracy of one prediction: mean over leave-one-out subsets of min(#matches / 3, 1)."""
    if not references:
        raise ValueError("vqa_accuracy: no reference answers")
    pred = normalize_answer(prediction)
    refs = [normalize_answer(r) for r in references]
    if len(refs) == 1:
        return float(pred == refs[0])
    scores = []
    for i in range(len(refs)):
        matches = sum(r == pred for j, r in enumerate(refs) if j != i)
        scores.append(min(matches / 3.0, 1.0))
    return sum(scores) / len(scores)


def exact_match(prediction: str, references: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals the most common normalised reference."""
    refs = Counter(normalize_answer(r) for r in references)
    return float(normalize_answer(prediction) == refs.most_common(1)[0][0])


@dataclass
class VQAScores:
    """Mean accuracy / exact match overall and per group (question type, answer type, style, concept)."""

    n: int
    accuracy: float
    exact_match: float
    groups: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "exact_match": self.exact_match,
            "groups": self.groups,
        }

    def table(self) -> str:
        acc, em = 100 * self.accuracy, 100 * self.exact_match
        lines = [f"VQA accuracy {acc:.1f}%  exact match {em:.1f}%  (n={self.n})"]
        for group, rows in self.groups.items():
            for key, r in sorted(rows.items()):
                a, e = 100 * r["accuracy"], 100 * r["exact_match"]
                lines.append(f"  {group:<14} {key:<28} acc {a:5.1f}%  em {e:5.1f}%  n={int(r['n'])}")
        return "\n".join(lines)


def _group_keys(s: VQASample) -> dict[str, list[str]]:
    keys = {"question_type": [s.question_type or "(none)"]}
    if s.answer_type:
        keys["answer_type"] = [s.answer_type]
    if "style" in s.meta:
        keys["style"] = [str(s.meta["style"])]
    if "concepts" in s.meta:
        keys["concept"] = list(s.meta["concepts"]) or ["(none)"]
    return keys


def score(samples: Sequence[VQASample], predictions: Sequence[str]) -> VQAScores:
    """Scores of `predictions[i]` against `samples[i].answers`."""
    if len(samples) != len(predictions):
        raise ValueError(f"score: {len(samples)} samples but {len(predictions)} predictions")
    if not samples:
        raise ValueError("score: no samples to score")
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0, 0.0]))
    acc_total = em_total = 0.0
    for s, p in zip(samples, predictions, strict=True):
        acc, em = vqa_accuracy(p, s.answers), exact_match(p, s.answers)
        acc_total, em_total = acc_total + acc, em_total + em
        for group, keys in _group_keys(s).items():
            for k in keys:
                row = sums[group][k]
                row[0], row[1], row[2] = row[0] + acc, row[1] + em, row[2] + 1
    groups = {
        g: {k: {"accuracy": a / n, "exact_match": e / n, "n": n} for k, (a, e, n) in rows.items()}
        for g, rows in sums.items()
    }
    n = len(samples)
    return VQAScores(n, acc_total / n, em_total / n, groups)


def clean_generation(text: str) -> str:
    """The answer part of a generated continuation: up to the first newline, stripped."""
    return text.strip().split("\n")[0].strip()


def predict(
    model: Any,
    samples: Sequence[VQASample],
    prompt: VQAPromptConfig | None = None,
    task: str = "",
    batch_size: int = 16,
    max_new_tokens: int = 16,
    progress: bool = False,
) -> list[str]:
    """Greedy answers of a VLM to each sample's last question (batched by image count)."""
    import torch
    from tqdm import tqdm

    state_dim = int(model.cfg.state.dim) if getattr(model, "state_encoder", None) is not None else 0
    collate = VQACollator(
        model.tokenizer, model.vision.transform, prompt or VQAPromptConfig(), bool(task), state_dim=state_dim
    )
    ds = VQADataset(samples, task=task)
    device = next(model.parameters()).device
    by_count: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        by_count[len(s.images)].append(i)
    out: list[str] = [""] * len(samples)
    batches = [idx[k : k + batch_size] for idx in by_count.values() for k in range(0, len(idx), batch_size)]
    model.eval()
    for idx in tqdm(batches, desc="eval-vqa", disable=not progress):
        inp = collate.generation_inputs([ds[i] for i in idx])
        inp = {k: v.to(device) for k, v in inp.items()}
        with torch.no_grad():  # a VLA's VLM gets the collator's zero state (VQA has no proprioception)
            gen = model.generate(
                inp["input_ids"],
                inp["attention_mask"],
                images=inp.get("images"),
                state=inp.get("state"),
                max_new_tokens=max_new_tokens,
            )
        for i, row in zip(idx, gen.tokens.tolist(), strict=True):
            out[i] = clean_generation(model.tokenizer.decode(row, skip_special_tokens=True))
    return out


def select(
    samples: Iterable[VQASample], styles: Sequence[str], question_types: Sequence[str]
) -> list[VQASample]:
    """Samples whose style (when they have one) and question type pass the filters (empty = all)."""
    keep = []
    for s in samples:
        style = s.meta.get("style")
        if styles and style is not None and style not in styles:
            continue
        if question_types and s.question_type not in question_types:
            continue
        keep.append(s)
    return keep


def _open(path: str | Path | Checkpoint) -> Checkpoint:
    return path if isinstance(path, Checkpoint) else Checkpoint.open(path)


def load_model(path: str | Path | Checkpoint) -> VLM:
    """The VLM of a checkpoint (or a training run's latest): a VLM checkpoint, or the VLM inside a VLA."""
    ck = _open(path)
    if ck.model_type == VLA_TYPE:
        return VLA.from_checkpoint(ck).vlm.eval()
    if ck.model_type != VLM_TYPE:
        raise ValueError(f"{ck.path}: a {ck.model_type!r} checkpoint holds no VLM; give a VLM or VLA one")
    return VLM.from_checkpoint(ck)


def cotrain_prompt(path: str | Path | Checkpoint, default_template: str) -> tuple[str, str]:
    """(task identifier, prompt template) a checkpoint was co-trained with (`train.cotrain` in its
    config.json); ("", default_template) for checkpoints trained without VQA co-training."""
    cot = _open(path).section("train").get("cotrain")
    if not cot or not cot.get("vqa"):
        return "", default_template
    task = str(cot["vqa"][0]["name"]) if cot.get("task_tag", True) else ""
    return task, str(cot.get("prompt_template", default_template))


def read_predictions(path: str | Path) -> dict[str, str]:
    """JSONL {"id", "prediction"} lines -> {id: prediction}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file not found: {path}")
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rec = json.loads(line)
                out[str(rec["id"])] = str(rec["prediction"])
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{path}: line {n}: expected {{'id': ..., 'prediction': ...}} ({e})") from e
    return out


@register_config("eval_vqa")
@dataclass
class EvalVQAConfig:
    data: VQASourceConfig = field(default_factory=lambda: VQASourceConfig(path="outputs/scene_vqa/test.json"))
    checkpoint: str | None = None  # a VLM or VLA checkpoint directory
    predictions: str | None = None  # or: a JSONL of {"id", "prediction"} to score without a model
    styles: list[str] = field(default_factory=lambda: ["short"])  # [] = every style
    question_types: list[str] = field(default_factory=list)  # [] = every type
    task: str = "auto"  # task identifier in prompts: auto = as the checkpoint was co-trained, "" = none
    prompt_template: str = "{task}Question: {question} Answer:"
    batch_size: int = 16
    max_new_tokens: int = 16
    device: str = "cpu"
    out: str = "outputs/eval_vqa"
    progress: bool = True


def run(cfg: EvalVQAConfig) -> VQAScores:
    """Read the questions, answer them (model or predictions file), score, write results to `cfg.out`."""

    if (cfg.checkpoint is None) == (cfg.predictions is None):
        raise ValueError("eval-vqa: give exactly one of checkpoint=DIR or predictions=FILE.jsonl")
    samples, errors = read_vqa(cfg.data)
    samples = select(samples, cfg.styles, cfg.question_types)
    if not samples:
        raise ValueError(
            f"eval-vqa: no samples in {cfg.data.path} pass styles={cfg.styles} types={cfg.question_types}"
        )
    if cfg.predictions is not None:
        table = read_predictions(cfg.predictions)
        missing = [s.id for s in samples if s.id not in table]
        if missing:
            raise ValueError(
                f"{cfg.predictions}: no prediction for {len(missing)} samples, e.g. {missing[:3]}"
            )
        preds = [table[s.id] for s in samples]
    else:
        ck = Checkpoint.open(cfg.checkpoint)
        model = load_model(ck).to(cfg.device)
        task, template = cfg.task, cfg.prompt_template
        if task == "auto":
            task, template = cotrain_prompt(ck, template)
        prompt = VQAPromptConfig(template=template)
        preds = predict(model, samples, prompt, task, cfg.batch_size, cfg.max_new_tokens, cfg.progress)
    scores = score(samples, preds)
    out = Path(cfg.out)
    result = {**scores.to_dict(), "source": cfg.data.path, "skipped": dict(errors.skipped)}
    atomic_write_json(out / "vqa_results.json", result)
    lines = [
        json.dumps({"id": s.id, "question": s.question, "prediction": p, "answers": sorted(set(s.answers))})
        for s, p in zip(samples, preds, strict=True)
    ]
    atomic_write_text(out / "predictions.jsonl", "\n".join(lines) + "\n")
    return scores


def summarize(results: Mapping[str, Any]) -> str:
    """One line from a vqa_results.json dict (for reports)."""
    acc, em = 100 * results["accuracy"], 100 * results["exact_match"]
    return f"VQA acc {acc:.1f}% / EM {em:.1f}% (n={results['n']})"

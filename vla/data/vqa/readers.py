"""Readers for the VQA formats users have: VQAv2, LLaVA instruction JSON and plain JSONL.

Each reader is named in the `READERS` table (name -> "module:function") and turns its files into
`VQASample`s (vla.data.vqa.sample), checking what a training run would otherwise trip over later: a
missing image, a question without an annotation, a conversation without an answer turn, an `<image>`
placeholder anywhere but the start or end of the first human turn, or a placeholder count that differs
from the image count.
Bad samples raise a ValueError naming the file and sample, or are skipped and counted (`on_error=skip`).

    VQAv2   questions JSON {"data_subtype", "questions": [{question_id, image_id, question}]} +
            annotations JSON {"annotations": [{question_id, multiple_choice_answer, question_type,
            answer_type, answers: [{answer, ...}] x10}]} + an image folder with
            COCO_<data_subtype>_<12-digit image id>.jpg (configurable `image_pattern`)
    LLaVA   [{"id", "image": str | [str], "conversations": [{"from": "human"|"gpt", "value"}, ...]}]
    JSONL   one {"image": str | [str], "question", "answers": [str] | "answer": str,
            "question_type"?, "id"?} per line

    samples, errors = read_vqa(VQASourceConfig(format="llava", path="data/scene_vqa/train.json"))
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vla.core.io import read_json
from vla.core.registry import Registry
from vla.data.vqa.config import VQASourceConfig
from vla.data.vqa.sample import IMAGE_TOKEN, ErrorPolicy, Turn, VQASample, check_images_exist

Reader = Callable[[VQASourceConfig, ErrorPolicy], Iterator[VQASample]]
READERS: Registry[Reader] = Registry(
    "VQA format",
    {
        "vqav2": "vla.data.vqa.readers:read_vqav2",
        "llava": "vla.data.vqa.readers:read_llava",
        "jsonl": "vla.data.vqa.readers:read_jsonl",
    },
)


def list_readers() -> list[str]:
    return READERS.names()


def read_vqa(cfg: VQASourceConfig) -> tuple[list[VQASample], ErrorPolicy]:
    """Every valid sample of a source (at most `cfg.max_samples`) and the error policy's skip counts."""
    reader = READERS.get(cfg.format)
    errors = ErrorPolicy(cfg.on_error)
    out: list[VQASample] = []
    for s in reader(cfg, errors):
        out.append(s)
        if cfg.max_samples is not None and len(out) >= cfg.max_samples:
            break
    return out, errors


def _image_root(cfg: VQASourceConfig) -> Path:
    return Path(cfg.image_root) if cfg.image_root else Path(cfg.path).parent


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


# ------------------------------------------------------------------------------------------- VQAv2
def read_vqav2(cfg: VQASourceConfig, errors: ErrorPolicy) -> Iterator[VQASample]:
    qpath = Path(cfg.path)
    if not cfg.annotations:
        raise ValueError(f"VQAv2 source {qpath}: set annotations= (the annotations JSON of the split)")
    questions = read_json(qpath, "VQAv2 questions file")
    annotations = read_json(cfg.annotations, "VQAv2 annotations file")
    if not isinstance(questions, dict) or not isinstance(questions.get("questions"), list):
        raise ValueError(f"{qpath}: expected a JSON object with a 'questions' list (VQAv2 questions file)")
    if not isinstance(annotations, dict) or not isinstance(annotations.get("annotations"), list):
        raise ValueError(f"{cfg.annotations}: expected a JSON object with an 'annotations' list")
    subtype = str(questions.get("data_subtype", cfg.data_subtype or ""))
    by_qid = {}
    for a in annotations["annotations"]:
        if "question_id" not in a:
            raise ValueError(f"{cfg.annotations}: an annotation has no 'question_id'")
        by_qid[a["question_id"]] = a
    root = _image_root(cfg)
    for i, q in enumerate(questions["questions"]):
        missing = [k for k in ("question_id", "image_id", "question") if k not in q]
        if missing:
            errors.handle(qpath, f"#{i}", "missing fields", f"question has no {missing}")
            continue
        qid = q["question_id"]
        ann = by_qid.get(qid)
        if ann is None:
            errors.handle(cfg.annotations, f"question_id={qid}", "no annotation")
            continue
        answers = tuple(str(x["answer"]) for x in ann.get("answers", []) if "answer" in x)
        best = ann.get("multiple_choice_answer") or (answers[0] if answers else None)
        if best is None:
            errors.handle(cfg.annotations, f"question_id={qid}", "no answer", "no answers in annotation")
            continue
        image = str(root / cfg.image_pattern.format(split=subtype, image_id=int(q["image_id"])))
        if check_images_exist([image]) is not None:
            errors.handle(qpath, f"question_id={qid}", "missing image", image)
            continue
        yield VQASample(
            id=str(qid),
            images=(image,),
            turns=(Turn(str(q["question"]), str(best)),),
            answers=answers or (str(best),),
            question_type=str(ann.get("question_type", "")),
            answer_type=str(ann.get("answer_type", "")),
            source="vqav2",
            meta={"image_id": q["image_id"]},
        )


# ------------------------------------------------------------------------------------------- LLaVA
def strip_image_tokens(text: str, first: bool) -> tuple[str, int]:
    """Remove `<image>` placeholders from a human turn; returns (text, count).

    Placeholders are allowed only in the first human turn, at its start or end (LLaVA puts them there,
    with a newline); anywhere else raises ValueError."""
    n = text.count(IMAGE_TOKEN)
    if n == 0:
        return text.strip(), 0
    if not first:
        raise ValueError(f"{IMAGE_TOKEN} in a later turn (only the first human turn may hold images)")
    body = text.strip()
    lead = trail = 0
    while body.startswith(IMAGE_TOKEN):
        body, lead = body[len(IMAGE_TOKEN) :].lstrip(), lead + 1
    while body.endswith(IMAGE_TOKEN):
        body, trail = body[: -len(IMAGE_TOKEN)].rstrip(), trail + 1
    if IMAGE_TOKEN in body:
        raise ValueError(f"{IMAGE_TOKEN} inside the text (expected it at the start or end of the turn)")
    return body, lead + trail


def llava_turns(conv: Any) -> tuple[list[Turn], int]:
    """LLaVA `conversations` -> turns and the number of `<image>` placeholders; raises ValueError."""
    if not isinstance(conv, list) or not conv:
        raise ValueError("'conversations' must be a non-empty list")
    msgs = [m for m in conv if not (isinstance(m, dict) and m.get("from") == "system")]
    turns, n_img = [], 0
    i = 0
    while i < len(msgs):
        h = msgs[i]
        if not isinstance(h, dict) or h.get("from") != "human" or "value" not in h:
            raise ValueError(f"message {i} must be {{'from': 'human', 'value': ...}}, got {h!r:.80}")
        prompt, k = strip_image_tokens(str(h["value"]), first=not turns)
        n_img += k
        if i + 1 >= len(msgs):
            raise ValueError(f"human message {i} has no answer turn (from: gpt)")
        g = msgs[i + 1]
        if not isinstance(g, dict) or g.get("from") != "gpt" or "value" not in g:
            raise ValueError(f"message {i + 1} must be the answer {{'from': 'gpt', 'value': ...}}")
        if IMAGE_TOKEN in str(g["value"]):
            raise ValueError(f"{IMAGE_TOKEN} in an answer turn (message {i + 1})")
        turns.append(Turn(prompt, str(g["value"]).strip()))
        i += 2
    return turns, n_img


def read_llava(cfg: VQASourceConfig, errors: ErrorPolicy) -> Iterator[VQASample]:
    path = Path(cfg.path)
    data = read_json(path, "LLaVA instruction file")
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of samples (LLaVA instruction format)")
    root = _image_root(cfg)
    for i, rec in enumerate(data):
        sid = str(rec.get("id", f"#{i}")) if isinstance(rec, dict) else f"#{i}"
        if not isinstance(rec, dict) or "conversations" not in rec:
            errors.handle(path, sid, "no conversations", "expected an object with 'conversations'")
            continue
        try:
            turns, n_img = llava_turns(rec["conversations"])
        except ValueError as e:
            reason = "no answer turn" if "no answer turn" in str(e) else "bad conversation"
            if IMAGE_TOKEN in str(e):
                reason = "bad image placement"
            errors.handle(path, sid, reason, str(e))
            continue
        images = [str(root / p) for p in _as_list(rec.get("image"))]
        if n_img != len(images) and not (n_img == 0 and len(images) == 1):
            # One image with no placeholder is LLaVA's implicit "image first"; anything else is ambiguous.
            detail = f"{n_img} {IMAGE_TOKEN} placeholders but {len(images)} images"
            errors.handle(path, sid, "bad image placement", detail)
            continue
        missing = check_images_exist(images)
        if missing is not None:
            errors.handle(path, sid, "missing image", missing)
            continue
        answers = _as_list(rec.get("answers")) or [turns[-1].answer]
        yield VQASample(
            id=sid,
            images=tuple(images),
            turns=tuple(turns),
            answers=tuple(answers),
            question_type=str(rec.get("question_type", "")),
            answer_type=str(rec.get("answer_type", "")),
            source="llava",
            meta={k: v for k, v in rec.items() if k not in ("conversations", "image", "id", "answers")},
        )


# ------------------------------------------------------------------------------------------- JSONL
def read_jsonl(cfg: VQASourceConfig, errors: ErrorPolicy) -> Iterator[VQASample]:
    path = Path(cfg.path)
    if not path.is_file():
        raise FileNotFoundError(f"VQA JSONL file not found: {path}")
    root = _image_root(cfg)
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            sid = f"line {line_no}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                errors.handle(path, sid, "invalid JSON", str(e))
                continue
            if not isinstance(rec, dict) or "question" not in rec:
                errors.handle(path, sid, "missing fields", "expected an object with 'question'")
                continue
            sid = str(rec.get("id", sid))
            answers = _as_list(rec.get("answers")) or _as_list(rec.get("answer"))
            if not answers:
                errors.handle(path, sid, "no answer", "expected 'answers' (list) or 'answer'")
                continue
            question = str(rec["question"])
            try:
                question, _ = strip_image_tokens(question, first=True)
            except ValueError as e:
                errors.handle(path, sid, "bad image placement", str(e))
                continue
            images = [str(root / p) for p in _as_list(rec.get("image"))]
            missing = check_images_exist(images)
            if missing is not None:
                errors.handle(path, sid, "missing image", missing)
                continue
            yield VQASample(
                id=sid,
                images=tuple(images),
                turns=(Turn(question, answers[0]),),
                answers=tuple(answers),
                question_type=str(rec.get("question_type", "")),
                answer_type=str(rec.get("answer_type", "")),
                source="jsonl",
            )

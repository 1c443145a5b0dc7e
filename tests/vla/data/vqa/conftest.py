"""Small fixture files in each real VQA format (VQAv2, LLaVA JSON, JSONL), written per test into tmp_path,
and a shared tiny VLM."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vla.backbones import compose_model_config
from vla.models import VLM

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 50), "blue": (30, 70, 230)}


def write_png(path, rgb, size=16):
    """A flat-colour image; the format follows the extension (.png, .jpg)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size, size, 3), np.uint8)
    arr[:] = rgb
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def vqav2_dir(tmp_path):
    """A 3-question VQAv2 split (val2014) with COCO-named images."""
    img_dir = tmp_path / "val2014"
    qs, anns = [], []
    for i, (name, rgb) in enumerate(COLOURS.items()):
        image_id = 1000 + i
        write_png(img_dir / f"COCO_val2014_{image_id:012d}.jpg", rgb)  # a real JPEG (by extension)
        qid = image_id * 10
        qs.append({"image_id": image_id, "question": "What color is the square?", "question_id": qid})
        human = [name] * 8 + ["dark " + name, "pink"]
        anns.append(
            {
                "question_type": "what color is the",
                "multiple_choice_answer": name,
                "answers": [
                    {"answer": a, "answer_confidence": "yes", "answer_id": k + 1} for k, a in enumerate(human)
                ],
                "image_id": image_id,
                "answer_type": "other",
                "question_id": qid,
            }
        )
    qfile = tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json"
    afile = tmp_path / "v2_mscoco_val2014_annotations.json"
    meta = {"info": {}, "license": {}, "data_type": "mscoco", "data_subtype": "val2014"}
    qfile.write_text(json.dumps({**meta, "task_type": "Open-Ended", "questions": qs}))
    afile.write_text(json.dumps({**meta, "annotations": anns}))
    return tmp_path, qfile, afile, img_dir


@pytest.fixture
def llava_file(tmp_path):
    """Three LLaVA records: single-turn, multi-turn, image placeholder at the end."""
    for name, rgb in COLOURS.items():
        write_png(tmp_path / "images" / f"{name}.png", rgb)
    recs = [
        {
            "id": "s0",
            "image": "images/red.png",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat colour is the square?"},
                {"from": "gpt", "value": "red"},
            ],
        },
        {
            "id": "s1",
            "image": "images/green.png",
            "question_type": "colour",
            "conversations": [
                {"from": "human", "value": "<image>\nDescribe the image."},
                {"from": "gpt", "value": "A green square fills the picture."},
                {"from": "human", "value": "What colour is it?"},
                {"from": "gpt", "value": "green"},
            ],
        },
        {
            "id": "s2",
            "image": "images/blue.png",
            "conversations": [
                {"from": "human", "value": "What colour is the square?\n<image>"},
                {"from": "gpt", "value": "blue"},
            ],
        },
    ]
    path = tmp_path / "llava.json"
    path.write_text(json.dumps(recs))
    return path, recs


@pytest.fixture
def jsonl_file(tmp_path):
    for name, rgb in COLOURS.items():
        write_png(tmp_path / f"{name}.png", rgb)
    lines = [
        {"image": f"{name}.png", "question": "What colour?", "answers": [name, name, "dark " + name]}
        for name in COLOURS
    ]
    lines[1] = {"image": "green.png", "question": "What colour?", "answer": "green", "id": "g"}
    path = tmp_path / "vqa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_vlm():
    """One tiny VLM (conv encoder, 2-layer Llama) shared by the VQA data tests; tests never step it."""
    torch.manual_seed(0)
    return VLM(compose_model_config("tiny"))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run fastest single-threaded on the shared CPU; the thread count is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

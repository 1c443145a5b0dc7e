"""Each VQA reader on small files in its real format: fields, answers, images, and bad input."""

import json

import numpy as np
import pytest

from vla.data.vqa import VQASourceConfig, read_vqa
from vla.data.vqa.readers import strip_image_tokens


def test_vqav2_reader_reads_questions_annotations_and_coco_images(vqav2_dir):
    root, qfile, afile, img_dir = vqav2_dir
    samples, errors = read_vqa(
        VQASourceConfig(format="vqav2", path=str(qfile), annotations=str(afile), image_root=str(img_dir))
    )
    assert len(samples) == 3 and errors.total_skipped == 0
    s = samples[0]
    assert s.id == "10000" and s.source == "vqav2"
    assert s.question == "What color is the square?" and s.turns[0].answer == "red"
    assert len(s.answers) == 10 and s.answers.count("red") == 8
    assert s.question_type == "what color is the" and s.answer_type == "other"
    assert s.images[0].endswith("COCO_val2014_000000001000.jpg")
    img = s.load_images()[0]
    assert img.dtype == np.uint8 and img.shape == (16, 16, 3) and img[..., 0].mean() > 150


def test_vqav2_custom_pattern_missing_image_and_annotation(vqav2_dir):
    root, qfile, afile, img_dir = vqav2_dir
    for p in img_dir.iterdir():
        p.rename(img_dir / p.name.replace("COCO_val2014_", "img_"))
    cfg = VQASourceConfig(
        format="vqav2",
        path=str(qfile),
        annotations=str(afile),
        image_root=str(img_dir),
        image_pattern="img_{image_id:012d}.jpg",
    )
    assert len(read_vqa(cfg)[0]) == 3
    (img_dir / "img_000000001001.jpg").unlink()
    with pytest.raises(ValueError, match=r"sample question_id=10010: missing image.*img_000000001001"):
        read_vqa(cfg)
    anns = json.loads(afile.read_text())
    anns["annotations"] = anns["annotations"][1:]
    afile.write_text(json.dumps(anns))
    cfg.on_error = "skip"
    samples, errors = read_vqa(cfg)
    assert [s.id for s in samples] == ["10020"]
    assert errors.skipped == {"no annotation": 1, "missing image": 1}
    assert "2 samples skipped" in errors.summary()


def test_vqav2_needs_annotations(vqav2_dir):
    _, qfile, _, _ = vqav2_dir
    with pytest.raises(ValueError, match="annotations="):
        read_vqa(VQASourceConfig(format="vqav2", path=str(qfile)))


def test_llava_reader_single_and_multi_turn(llava_file):
    path, _ = llava_file
    samples, errors = read_vqa(VQASourceConfig(format="llava", path=str(path)))
    assert [s.id for s in samples] == ["s0", "s1", "s2"] and errors.total_skipped == 0
    assert samples[0].turns[0].prompt == "What colour is the square?"
    assert len(samples[1].turns) == 2 and samples[1].answers == ("green",)
    assert samples[1].turns[0].answer.startswith("A green square")
    assert samples[1].question_type == "colour"
    assert samples[2].turns[0].prompt == "What colour is the square?"  # trailing placeholder removed
    assert samples[2].load_images()[0][..., 2].mean() > 150


@pytest.mark.parametrize(
    ("conversations", "reason"),
    [
        ([{"from": "human", "value": "<image>\nWhat?"}], "no answer turn"),
        (
            [{"from": "human", "value": "What <image> is this?"}, {"from": "gpt", "value": "x"}],
            "bad image placement",
        ),
        (
            [
                {"from": "human", "value": "<image>\nA?"},
                {"from": "gpt", "value": "a"},
                {"from": "human", "value": "<image>\nB?"},
                {"from": "gpt", "value": "b"},
            ],
            "bad image placement",
        ),
        ([{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}], "bad conversation"),
    ],
)
def test_llava_bad_conversations_raise_or_skip(llava_file, conversations, reason):
    path, recs = llava_file
    bad = {"id": "bad7", "image": "images/red.png", "conversations": conversations}
    path.write_text(json.dumps(recs + [bad]))
    with pytest.raises(ValueError, match=rf"llava.json: sample bad7: {reason}"):
        read_vqa(VQASourceConfig(format="llava", path=str(path)))
    samples, errors = read_vqa(VQASourceConfig(format="llava", path=str(path), on_error="skip"))
    assert len(samples) == 3 and errors.skipped == {reason: 1}


def test_llava_missing_image_and_image_count(llava_file):
    path, recs = llava_file
    two = {**recs[0], "id": "two", "image": ["images/red.png", "images/blue.png"]}
    gone = {**recs[0], "id": "gone", "image": "images/none.png"}
    path.write_text(json.dumps([two]))
    with pytest.raises(ValueError, match="sample two: bad image placement: 1 <image> placeholders but 2"):
        read_vqa(VQASourceConfig(format="llava", path=str(path)))
    path.write_text(json.dumps([gone]))
    with pytest.raises(ValueError, match="sample gone: missing image.*none.png"):
        read_vqa(VQASourceConfig(format="llava", path=str(path)))


def test_jsonl_reader_and_bad_lines(jsonl_file):
    samples, _ = read_vqa(VQASourceConfig(format="jsonl", path=str(jsonl_file)))
    assert [s.answers for s in samples][0] == ("red", "red", "dark red")
    assert samples[1].id == "g" and samples[1].answers == ("green",) and samples[2].source == "jsonl"
    with jsonl_file.open("a") as f:
        f.write("{not json\n")
        f.write(json.dumps({"image": "red.png", "question": "Q?"}) + "\n")
    with pytest.raises(ValueError, match="vqa.jsonl: sample line 4: invalid JSON"):
        read_vqa(VQASourceConfig(format="jsonl", path=str(jsonl_file)))
    samples, errors = read_vqa(VQASourceConfig(format="jsonl", path=str(jsonl_file), on_error="skip"))
    assert len(samples) == 3 and errors.skipped == {"invalid JSON": 1, "no answer": 1}
    assert len(read_vqa(VQASourceConfig(format="jsonl", path=str(jsonl_file), max_samples=2))[0]) == 2


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="unknown VQA format 'coco'.*jsonl"):
        read_vqa(VQASourceConfig(format="coco", path="x"))
    with pytest.raises(FileNotFoundError, match="LLaVA instruction file not found"):
        read_vqa(VQASourceConfig(format="llava", path=str(tmp_path / "none.json")))


def test_strip_image_tokens():
    assert strip_image_tokens("<image>\n<image>\nCompare.", first=True) == ("Compare.", 2)
    assert strip_image_tokens("plain", first=False) == ("plain", 0)
    with pytest.raises(ValueError, match="inside the text"):
        strip_image_tokens("a <image> b", first=True)

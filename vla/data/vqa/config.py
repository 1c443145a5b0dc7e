"""Config schemas of VQA data: one source (`VQASourceConfig`, hydra group `data`, presets
`configs/data/vqa*.yaml`) and the prompt format that turns a sample into model text (`VQAPromptConfig`).

    vla eval-vqa data=vqa_llava data.path=outputs/scene_vqa/test.json checkpoint=outputs/vlm
    cfg = VQASourceConfig(format="vqav2", path="v2_OpenEnded_mscoco_val2014_questions.json",
                          annotations="v2_mscoco_val2014_annotations.json", image_root="val2014")
"""

from __future__ import annotations

from dataclasses import dataclass

from vla.core.config import register_config

# VQAv2/COCO image names: COCO_val2014_000000393225.jpg
COCO_IMAGE_PATTERN = "COCO_{split}_{image_id:012d}.jpg"


@register_config("vqa", group="data")
@dataclass
class VQASourceConfig:
    """Where one VQA source lives and how bad samples are handled.

    format: vqav2 | llava | jsonl. path: the questions JSON (vqav2), the instruction JSON (llava) or the
    JSONL file. image_root: folder the image names are relative to (default: the file's folder).
    annotations / image_pattern / data_subtype: VQAv2 only (data_subtype overrides the questions file's
    `data_subtype` only when that is absent). on_error: raise | skip (skipped samples are counted).
    """

    format: str = "llava"
    path: str = "outputs/scene_vqa/train.json"
    image_root: str | None = None
    annotations: str | None = None
    image_pattern: str = COCO_IMAGE_PATTERN
    data_subtype: str | None = None
    on_error: str = "raise"
    max_samples: int | None = None


@dataclass
class VQAPromptConfig:
    """How turns become text: `template` wraps each question ({question}; {task} is the source's task
    identifier), the answer follows after `answer_prefix`, and every answer ends with EOS."""

    template: str = "{task}Question: {question} Answer:"
    answer_prefix: str = " "
    task_format: str = "[{task}] "  # how a non-empty task identifier is written into {task}
    turn_separator: str = "\n"

    def format_question(self, question: str, task: str = "") -> str:
        tag = self.task_format.format(task=task) if task else ""
        return self.template.format(question=question.strip(), task=tag)

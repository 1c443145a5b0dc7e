"""VQA data: readers (VQAv2, LLaVA JSON, JSONL) into one sample type, a torch dataset and collator that
turn samples into VLM inputs with loss only on answers, and the co-training set-up (the mixtures themselves
are `vla.data.mixture`, shared with robot-store mixtures).

    from vla.data.vqa import VQASourceConfig, read_vqa, VQADataset, VQACollator
    samples, errors = read_vqa(VQASourceConfig(format="llava", path="outputs/scene_vqa/train.json"))
"""

from vla.data.vqa.config import VQAPromptConfig, VQASourceConfig
from vla.data.vqa.cotrain import CoTrainConfig, VQAMixSource, build_cotrain, cotrain_collator
from vla.data.vqa.dataset import VQACollator, VQADataset, encode_turns
from vla.data.vqa.readers import READERS, list_readers, read_vqa
from vla.data.vqa.sample import ErrorPolicy, Turn, VQASample, load_rgb

__all__ = [
    "READERS",
    "CoTrainConfig",
    "ErrorPolicy",
    "VQAMixSource",
    "Turn",
    "VQACollator",
    "VQADataset",
    "VQAPromptConfig",
    "VQASample",
    "VQASourceConfig",
    "build_cotrain",
    "cotrain_collator",
    "encode_turns",
    "list_readers",
    "load_rgb",
    "read_vqa",
]

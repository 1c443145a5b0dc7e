"""Models assembled from the backbone library: the VLM (VQA) here; the VLA (vla/models/vla*.py) builds on it.

Build a VLM from a preset with `VLM(compose_model_config("tiny"))`, save it with `model.save_pretrained(dir)`
and load it back with `load_checkpoint(dir)` (the project's one checkpoint format, vla/models/checkpoint.py).
"""

from vla.models.checkpoint import load_checkpoint, read_checkpoint_config, save_checkpoint
from vla.models.generation import GenerationResult, greedy_generate
from vla.models.vlm import VLM, VLMOutput, token_accuracy

__all__ = [
    "VLM",
    "GenerationResult",
    "VLMOutput",
    "greedy_generate",
    "load_checkpoint",
    "read_checkpoint_config",
    "save_checkpoint",
    "token_accuracy",
]

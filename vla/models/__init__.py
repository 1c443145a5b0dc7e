"""Models assembled from the backbone library: the VLM (VQA) here; the VLA (vla/models/vla*.py) builds on it.

Build a VLM from a preset with `VLM(compose_model_config("tiny"))`, save it with `model.save_pretrained(dir)`
and load it back with `VLM.from_pretrained(dir)`: the project's one checkpoint format
(vla/models/checkpoint.py; `write_checkpoint` writes it, `Checkpoint.open` checks and reads it).
"""

from vla.models.checkpoint import Checkpoint, CheckpointContents, write_checkpoint
from vla.models.generation import GenerationResult, greedy_generate
from vla.models.vlm import VLM, VLMOutput, token_accuracy

__all__ = [
    "VLM",
    "Checkpoint",
    "CheckpointContents",
    "GenerationResult",
    "VLMOutput",
    "greedy_generate",
    "token_accuracy",
    "write_checkpoint",
]

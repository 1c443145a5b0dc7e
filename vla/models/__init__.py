"""Models assembled from the backbone library: the VLM (VQA) here; the VLA (vla/models/vla*.py) builds on it.

from vla.models import VLM, load_checkpoint
model = VLM(compose_model_config("tiny"))
model.save_pretrained("outputs/vlm"); model = load_checkpoint("outputs/vlm")
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

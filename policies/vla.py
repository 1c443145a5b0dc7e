"""`VLAPolicy`: a VLA checkpoint (model + processor + normaliser) behind the Policy protocol.

The same object serves sim rollouts (`vla eval policy=vla policy_kwargs.checkpoint=...`, or
`vla eval checkpoint=...`) and the ROS 2 node: it keeps the last `n_obs` observations (the history the
checkpoint was trained with), predicts a raw action chunk [T, D] with `VLA.predict_action` (the
processor's preprocess -> the model's tensors, constrained KV-cached decoding or one continuous-head pass
-> the processor's postprocess) and returns its first step. Wrap it to execute more of each chunk
(`ActionChunkQueue`) or to blend overlapping chunks (`TemporalEnsemble`); the registry entry "vla" does
that from keyword arguments.

    policy = VLAPolicy.from_pretrained("outputs/train/pick")          # run dir or checkpoint dir
    policy.reset(); action = policy.select_action(obs)                # [D] float32
    policy = make_policy("vla", checkpoint="outputs/train/pick", execute_steps=4)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policies.wrappers import ActionChunkQueue, TemporalEnsemble
from vla.core.types import ActionSpace, check_action
from vla.models.checkpoint import Checkpoint
from vla.models.vla import VLA


def check_env_compatible(ck: Checkpoint, env_cameras: list[str], action_space: str) -> None:
    """Before the first episode: the checkpoint's cameras must be rendered by the env and its action
    dimension must be the env's (ValueError naming both otherwise)."""
    vla_cfg = ck.section("vla")
    cams = list((vla_cfg.get("processor") or {}).get("cameras", []))
    missing = [c for c in cams if c not in env_cameras]
    if missing:
        raise ValueError(
            f"checkpoint {ck.path} was trained with cameras {cams}, but the env renders {env_cameras} "
            f"(missing {missing}; set env.cameras=[{','.join(cams)}])"
        )
    dim = int(vla_cfg.get("action_dim", -1))
    if dim != ActionSpace.parse(action_space).dim:
        raise ValueError(
            f"checkpoint {ck.path} predicts {dim}-D actions, but the env's action space {action_space!r} "
            f"is {ActionSpace.parse(action_space).dim}-D"
        )


class VLAPolicy:
    """One action per call from a VLA checkpoint; `predict_chunk` gives the whole chunk [T, D]."""

    def __init__(self, model: Any, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.processor = model.processor
        self.chunk_len = self.processor.chunk_len
        self.action_dim = self.processor.action_dim
        self._history: deque[Mapping[str, Any]] = deque(maxlen=self.processor.cfg.n_obs)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> VLAPolicy:
        """A checkpoint directory, or a training run directory (its latest checkpoint)."""
        return cls(VLA.from_pretrained(path), device=device)

    def reset(self, seed: int | None = None) -> None:
        self._history.clear()

    def observe(self, obs: Mapping[str, Any]) -> None:
        """Record an observation in the history without predicting (chunk wrappers call this)."""
        self._history.append(obs)

    @torch.no_grad()
    def predict_chunk(self, obs: Mapping[str, Any], record: bool = True) -> np.ndarray:
        """Raw action chunk [T, D] float32 for the current observation (recorded in the history)."""
        if record:
            self.observe(obs)
        chunk = self.model.predict_action(list(self._history) or [obs])  # [T,D]
        if chunk.shape != (self.chunk_len, self.action_dim) or not np.all(np.isfinite(chunk)):
            raise ValueError(f"VLAPolicy: model returned a bad chunk of shape {chunk.shape}")
        return chunk

    def select_action(self, obs: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> np.ndarray:
        return check_action(self.predict_chunk(obs)[0], self.action_dim)


def make_vla_policy(
    checkpoint: str,
    execute_steps: int = 0,
    temporal_ensemble: float | None = None,
    device: str = "cpu",
) -> Any:
    """Registry entry: a VLAPolicy, wrapped in an ActionChunkQueue (execute `execute_steps` of each
    chunk; 0 = the whole chunk) or, with `temporal_ensemble=m`, an ACT TemporalEnsemble (exp(-m i))."""
    policy = VLAPolicy.from_pretrained(checkpoint, device=device)
    if temporal_ensemble is not None:
        return TemporalEnsemble(policy, coeff=float(temporal_ensemble))
    steps = int(execute_steps) or policy.chunk_len
    if steps == 1:
        return policy
    return ActionChunkQueue(policy, execute_steps=steps)

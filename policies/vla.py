"""`VLAPolicy`: a VLA checkpoint (model + processor + normaliser) behind the Policy protocol.

The same object serves sim rollouts (`vla eval policy=vla policy_kwargs.checkpoint=...`, or
`vla eval checkpoint=...`) and the ROS 2 node: it keeps the last `n_obs` observations (the history the
checkpoint was trained with), predicts a raw action chunk [T, D] with `VLA.predict_action` (the
processor's preprocess -> the model's tensors, constrained KV-cached decoding or one continuous-head pass
-> the processor's postprocess) and returns its first step. Wrap it to execute more of each chunk
(`ActionChunkQueue`) or to blend overlapping chunks (`TemporalEnsemble`); the registry entry "vla" does
that from keyword arguments.

Actions leave the policy inside the env's action space: every predicted chunk is clipped to the bounds
of the action convention its size names (`action_bounds`: ee_delta, 7-D, the simulator's per-step
`ControlLimits` for the EE deltas and [0, 1] for the gripper; joint_pos, 8-D, the Panda's joint limits and
[0, 1]), the same box the env clips to. A model can step outside it (a continuous head's output a little
past the training range, a normaliser fitted on wider data: a gripper command of 1.0016 was seen). The
policy counts what it clips in `policy.stats`: `actions` (actions predicted, every step of every chunk),
`clipped` (those with at least one value outside the bounds) and `clipped_per_dim` ([D] counts), over the
policy's lifetime (`reset` keeps them). Behind a chunk wrapper read `wrapper.policy.stats`.
`clip=False` returns the model's actions as they are (still counted).

    policy = VLAPolicy.from_pretrained("outputs/train/pick")          # run dir or checkpoint dir
    policy.reset(); action = policy.select_action(obs)                # [D] float32, within the bounds
    policy.stats                                                      # {"actions": 1, "clipped": 0, ...}
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
from sim.robot import LOWER, UPPER, ControlLimits
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


def action_bounds(action_space: str | ActionSpace) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) [D] float32 of an action convention, as the simulator's action space has them:
    ee_delta: +-max_translation (m), +-max_rotation (rad) per step and the gripper in [0, 1]; joint_pos:
    the Panda's joint limits and the gripper in [0, 1]."""
    space = ActionSpace.parse(action_space)
    if space is ActionSpace.EE_DELTA:
        lim = ControlLimits()
        t, r = lim.max_translation, lim.max_rotation
        low, high = [-t, -t, -t, -r, -r, -r, 0.0], [t, t, t, r, r, r, 1.0]
    else:
        low, high = [*LOWER, 0.0], [*UPPER, 1.0]
    return np.array(low, dtype=np.float32), np.array(high, dtype=np.float32)


def _bounds_for(action_dim: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The bounds of the convention with `action_dim` dimensions (None: no known convention has it)."""
    for space in ActionSpace:
        if space.dim == action_dim:
            return action_bounds(space)
    return None


class VLAPolicy:
    """One action per call from a VLA checkpoint; `predict_chunk` gives the whole chunk [T, D], clipped
    to the action space's bounds (`bounds`: (low, high) [D]; None: those of the action size's convention,
    see `action_bounds`) and counted in `stats`."""

    def __init__(
        self,
        model: Any,
        device: str = "cpu",
        bounds: tuple[Any, Any] | None = None,
        clip: bool = True,
    ):
        self.model = model.to(device).eval()
        self.processor = model.processor
        self.chunk_len = self.processor.chunk_len
        self.action_dim = self.processor.action_dim
        self._history: deque[Mapping[str, Any]] = deque(maxlen=self.processor.cfg.n_obs)
        if bounds is None:
            bounds = _bounds_for(self.action_dim)
        if bounds is not None:
            low, high = (np.asarray(b, dtype=np.float32).reshape(-1) for b in bounds)
            if low.shape != (self.action_dim,) or high.shape != low.shape or np.any(low > high):
                raise ValueError(
                    f"VLAPolicy: bounds must be (low, high) of shape ({self.action_dim},) with low <= high, "
                    f"got {low.tolist()}, {high.tolist()}"
                )
            bounds = (low, high)
        self.bounds: tuple[np.ndarray, np.ndarray] | None = bounds
        self.clip = bool(clip)
        self.stats: dict[str, Any] = {"actions": 0, "clipped": 0, "clipped_per_dim": [0] * self.action_dim}

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", **kwargs: Any) -> VLAPolicy:
        """A checkpoint directory, or a training run directory (its latest checkpoint); `kwargs` go to
        the constructor (bounds, clip)."""
        return cls(VLA.from_pretrained(path), device=device, **kwargs)

    def _bound(self, chunk: np.ndarray) -> np.ndarray:
        """Count the actions of `chunk` [T, D] outside the bounds; return it clipped (unless clip=False)."""
        self.stats["actions"] += int(chunk.shape[0])
        if self.bounds is None:
            return chunk
        low, high = self.bounds
        outside = (chunk < low) | (chunk > high)  # [T,D]
        self.stats["clipped"] += int(outside.any(axis=1).sum())
        per_dim = outside.sum(axis=0)
        self.stats["clipped_per_dim"] = [int(a + b) for a, b in zip(self.stats["clipped_per_dim"], per_dim)]
        return np.clip(chunk, low, high).astype(np.float32) if self.clip else chunk

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
        return self._bound(np.asarray(chunk, dtype=np.float32))

    def select_action(self, obs: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> np.ndarray:
        return check_action(self.predict_chunk(obs)[0], self.action_dim)


def make_vla_policy(
    checkpoint: str,
    execute_steps: int = 0,
    temporal_ensemble: float | None = None,
    device: str = "cpu",
    clip: bool = True,
) -> Any:
    """Registry entry: a VLAPolicy, wrapped in an ActionChunkQueue (execute `execute_steps` of each
    chunk; 0 = the whole chunk) or, with `temporal_ensemble=m`, an ACT TemporalEnsemble (exp(-m i)).
    `clip=False` lets out-of-bounds actions through (they are still counted in `stats`)."""
    policy = VLAPolicy.from_pretrained(checkpoint, device=device, clip=clip)
    if temporal_ensemble is not None:
        return TemporalEnsemble(policy, coeff=float(temporal_ensemble))
    steps = int(execute_steps) or policy.chunk_len
    if steps == 1:
        return policy
    return ActionChunkQueue(policy, execute_steps=steps)

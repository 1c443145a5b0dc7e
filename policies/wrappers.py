"""Policy wrappers over chunk-predicting policies: an action-chunk queue and temporal ensembling.

A chunk policy has `reset(seed)`, `predict_chunk(obs) -> [T, D]` (recording `obs` in its own history) and,
optionally, `observe(obs)` to record an observation without predicting. Both wrappers are Policies
(`reset`, `select_action(obs, info) -> [D]`), so rollouts, `vla eval` and the ROS 2 node use them as is.

* `ActionChunkQueue(policy, execute_steps=k)`: predict a chunk, execute its first k actions open loop
  (one per call), predict again when the queue runs dry: one inference per k control steps.
* `TemporalEnsemble(policy, coeff=m)` (ACT, Zhao et al. 2023): predict a chunk at every step; the action
  for step t averages every stored chunk's prediction for t, weighted exp(-m i) with i = 0 the oldest
  prediction (m = 0: plain mean; larger m trusts older predictions more).

    policy = ActionChunkQueue(VLAPolicy.from_pretrained(ckpt), execute_steps=4)
    policy.reset(); a = policy.select_action(obs)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class ChunkPolicy(Protocol):
    def reset(self, seed: int | None = None) -> None: ...

    def predict_chunk(self, obs: Mapping[str, Any]) -> np.ndarray:
        """Action chunk [T, D] for `obs` (which the policy records in its history)."""


def _chunk(policy: ChunkPolicy, obs: Mapping[str, Any]) -> np.ndarray:
    chunk = np.asarray(policy.predict_chunk(obs), dtype=np.float32)
    if chunk.ndim != 2 or chunk.shape[0] < 1:
        raise ValueError(f"chunk policy: predict_chunk must return [T, D], got shape {chunk.shape}")
    return chunk


class ActionChunkQueue:
    """Execute `execute_steps` actions of each predicted chunk before predicting the next one."""

    def __init__(self, policy: ChunkPolicy, execute_steps: int):
        if int(execute_steps) < 1:
            raise ValueError(f"ActionChunkQueue: execute_steps must be >= 1, got {execute_steps}")
        t = getattr(policy, "chunk_len", None)
        if t is not None and int(execute_steps) > int(t):
            raise ValueError(f"ActionChunkQueue: execute_steps {execute_steps} exceeds the chunk length {t}")
        self.policy, self.execute_steps = policy, int(execute_steps)
        self._queue: deque[np.ndarray] = deque()
        self.inferences = 0  # chunks predicted since reset

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset(seed)
        self._queue.clear()
        self.inferences = 0

    def select_action(self, obs: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> np.ndarray:
        if not self._queue:
            chunk = _chunk(self.policy, obs)  # [T,D]
            if self.execute_steps > chunk.shape[0]:
                raise ValueError(
                    f"ActionChunkQueue: execute_steps {self.execute_steps} exceeds the chunk length "
                    f"{chunk.shape[0]}"
                )
            self._queue.extend(chunk[: self.execute_steps].copy())
            self.inferences += 1
        elif hasattr(self.policy, "observe"):
            self.policy.observe(obs)  # keep the observation history complete between inferences
        return self._queue.popleft().copy()


class TemporalEnsemble:
    """ACT temporal ensembling: average all chunks' predictions for the current step, weights exp(-m i)."""

    def __init__(self, policy: ChunkPolicy, coeff: float = 0.01):
        if not np.isfinite(coeff) or coeff < 0:
            raise ValueError(f"TemporalEnsemble: coeff must be a finite number >= 0, got {coeff}")
        self.policy, self.coeff = policy, float(coeff)
        self._chunks: deque[tuple[int, np.ndarray]] = deque()  # (step the chunk was predicted at, [T,D])
        self._t = 0

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset(seed)
        self._chunks.clear()
        self._t = 0

    def select_action(self, obs: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> np.ndarray:
        chunk = _chunk(self.policy, obs)  # [T,D]
        self._chunks.append((self._t, chunk))
        while self._chunks and self._chunks[0][0] + self._chunks[0][1].shape[0] <= self._t:
            self._chunks.popleft()  # chunks that no longer cover step t
        preds = np.stack([c[self._t - s] for s, c in self._chunks])  # [K,D], oldest first
        w = np.exp(-self.coeff * np.arange(len(preds)))  # [K], i = 0 the oldest
        self._t += 1
        return (w[:, None] * preds).sum(axis=0).astype(np.float32) / np.float32(w.sum())

"""The recorder: a rollout Observer that buffers one episode and appends it to an episode store.

It plugs into `vla.core.rollout.run_episode` / `run_episodes_vector` (one recorder per episode, from an
observer factory). Each step records the observation the action was chosen from plus that action, for
every frame feature of the store; at episode end the episode is appended atomically with its metadata
(instruction, task, split, seed, success, length, error), successful episodes only unless
`keep_failed=True`. Episodes that ended in an error (a policy exception, a physics blow-up) are never
kept: their frames may be incomplete or non-finite.

    store = EpisodeStore.create(out, features_from_spaces(env.observation_space, env.action_space), fps=10)
    results = run_episodes_vector(venv, experts, seeds, observer_factory=lambda s: [EpisodeRecorder(store)])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla.core.types import (
    ACTION_KEY,
    AUX_KEY,
    AUX_NAMES,
    COLOUR_PREFIX,
    DEPTH_PREFIX,
    IMAGE_PREFIX,
    INSTRUCTION_KEY,
    SEG_PREFIX,
    STATE_KEY,
    STATE_NAMES,
    ActionSpace,
    FeatureSpec,
    FeatureType,
)
from vla.data.store import EpisodeStore


def features_from_spaces(
    observation_space: Any, action_space: Any, action_convention: str = "ee_delta"
) -> dict[str, FeatureSpec]:
    """Store features for an env's gymnasium Dict observation space and Box action space."""
    feats: dict[str, FeatureSpec] = {}
    for key, space in observation_space.spaces.items():
        shape = tuple(int(s) for s in getattr(space, "shape", None) or ())
        dtype = getattr(space, "dtype", None)
        if key == INSTRUCTION_KEY or dtype is None or np.dtype(dtype).kind not in "biuf":
            continue  # text (the instruction) is per-episode metadata
        if key.startswith(IMAGE_PREFIX):
            kind = FeatureType.VISUAL
        elif key.startswith(DEPTH_PREFIX):
            kind = FeatureType.DEPTH
        elif key.startswith((SEG_PREFIX, COLOUR_PREFIX)):
            kind = FeatureType.SEGMENTATION
        else:
            kind = FeatureType.STATE
        names = STATE_NAMES if key == STATE_KEY and shape == (len(STATE_NAMES),) else None
        feats[key] = FeatureSpec(kind, shape, np.dtype(dtype).name, names)
    space = ActionSpace.parse(action_convention)
    shape = tuple(int(s) for s in action_space.shape)
    if shape != (space.dim,):
        raise ValueError(
            f"action space shape {shape} does not match convention {space.value} ({space.dim}-D)"
        )
    feats[ACTION_KEY] = FeatureSpec(
        FeatureType.ACTION, shape, "float32", space.names, {"convention": space.value}
    )
    return feats


def aux_feature() -> FeatureSpec:
    """The store feature of `scene_targets` (AUX_KEY): float32 [6], metres, robot base frame."""
    info = {"source": "simulator (privileged): the named object's and goal's positions; a training target"}
    return FeatureSpec(FeatureType.STATE, (len(AUX_NAMES),), "float32", AUX_NAMES, info)


def scene_targets(info: Mapping[str, Any]) -> np.ndarray:
    """Where the instruction's object and its goal are, from a simulator step's info (its "privileged"
    entry, sim.env): [target xyz, goal xyz] float32 [6]. The goal is the fixture (place, push), the other
    object (stack), the goal pose, or the lift point above the object (pick)."""
    priv = info.get("privileged") if isinstance(info, Mapping) else None
    if not isinstance(priv, Mapping) or "target_index" not in priv or "goal_position" not in priv:
        raise ValueError(
            f"{AUX_KEY}: the env's info has no privileged target_index / goal_position (a simulated env "
            f"is needed to record it); info keys {sorted(info) if isinstance(info, Mapping) else type(info)}"
        )
    target = np.asarray(priv["object_poses"][int(priv["target_index"])], dtype=np.float32)[:3]
    goal = np.asarray(priv["goal_position"], dtype=np.float32)[:3]
    return np.concatenate([target, goal])  # [6]


@dataclass
class RecordTally:
    """Counts shared by the recorders of one collection run (main process only)."""

    limit: int | None = None  # stop storing once this many episodes are kept
    episodes_seen: int = 0
    episodes_kept: int = 0
    frames_kept: int = 0
    dropped_errors: int = 0
    errors: list[str] = field(default_factory=list)


class EpisodeRecorder:
    """Observer that records one episode at a time into `store` (opened with mode "a")."""

    def __init__(
        self,
        store: EpisodeStore,
        keep_failed: bool = False,
        extra_meta: Mapping[str, Any] | None = None,
        tally: RecordTally | None = None,
    ) -> None:
        if store.mode != "a":
            raise ValueError(f"EpisodeRecorder: store {store.path} must be open for appending (mode='a')")
        self.store = store
        self.keep_failed = bool(keep_failed)
        self.extra_meta = dict(extra_meta or {})
        self.tally = tally if tally is not None else RecordTally()
        self._obs_keys = [k for k in store.features if k not in (ACTION_KEY, AUX_KEY)]
        self._aux = AUX_KEY in store.features  # recorded from the info that came with each observation
        self._info: Mapping[str, Any] = {}
        self._buf: dict[str, list[np.ndarray]] = {}
        self._meta: dict[str, Any] = {}

    def on_episode_start(self, obs: Mapping[str, Any], info: Mapping[str, Any]) -> None:
        missing = [k for k in self._obs_keys if k not in obs]
        if missing:
            raise ValueError(
                f"EpisodeRecorder: observation lacks store features {missing}; has {sorted(obs)}"
            )
        self._buf = {k: [] for k in [*self._obs_keys, ACTION_KEY, *([AUX_KEY] if self._aux else [])]}
        self._info = info
        self._meta = {
            "instruction": str(info.get("instruction", obs.get("instruction", ""))),
            "task": str(info.get("task", "")),
            "split": str(info.get("split", "")),
        }

    def on_step(
        self,
        obs: Mapping[str, Any],
        action: np.ndarray,
        reward: float,
        terminated: bool,
        truncated: bool,
        info: Mapping[str, Any],
    ) -> None:
        for k in self._obs_keys:
            self._buf[k].append(np.array(obs[k], copy=True))
        self._buf[ACTION_KEY].append(np.array(action, dtype=np.float32, copy=True))
        if self._aux:  # the scene when `obs` was taken: the reset's info, then the previous step's
            self._buf[AUX_KEY].append(scene_targets(self._info))
        self._info = info

    def on_episode_end(self, result: Any) -> None:
        self.tally.episodes_seen += 1
        frames = {k: v for k, v in self._buf.items()}
        self._buf = {}
        if result.error is not None:
            self.tally.dropped_errors += 1
            self.tally.errors.append(f"seed {result.seed}: {result.error}")
            return
        if not (result.success or self.keep_failed) or not frames or not frames[ACTION_KEY]:
            return
        if self.tally.limit is not None and self.tally.episodes_kept >= self.tally.limit:
            return
        stacked = {k: np.stack(v) for k, v in frames.items()}
        meta = {
            **self._meta,
            "task": result.task or self._meta.get("task", ""),
            "split": result.split or self._meta.get("split", ""),
            "instruction": result.instruction or self._meta.get("instruction", ""),
            "seed": int(result.seed),
            "success": bool(result.success),
            **self.extra_meta,
        }
        self.store.append_episode(stacked, meta)
        self.tally.episodes_kept += 1
        self.tally.frames_kept += len(stacked[ACTION_KEY])

"""The Policy protocol and the policy registry (a name -> "module:attr" table, imported on first use).

A policy maps one observation (the dict of `vla.core.types`: `images/<cam>` [H,W,3] uint8, `depth/<cam>`
[H,W] float32, `state` [S] float32, `instruction` str) to one EnvAction [D] float32. The same object runs
in simulation rollouts (`vla.core.rollout`), in `vla eval`, and inside the ROS 2 node.

    policy = make_policy("random", action_dim=7, seed=0)
    policy.reset()
    action = policy.select_action(obs)            # np.ndarray [D] float32
    action = expert.select_action(obs, info)      # scripted experts may read privileged `info`

`info` is the env's info dict from the last `reset`/`step`. Learned policies must ignore it (a real robot
has none); scripted experts read privileged state from it. Policies never mutate `obs` or `info`.
`POLICIES` lists every built-in policy, including those defined on higher floors (the scripted experts in
`sim.experts`, the VLA in `policies.vla`); naming them here imports nothing until one is asked for. A
user plugin adds itself with `POLICIES.register("mine", "my_pkg.policy:make_policy")`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vla.core.registry import Registry
from vla.core.types import ACTION_DIM


@runtime_checkable
class Policy(Protocol):
    def reset(self, seed: int | None = None) -> None:
        """Clear internal state (action queues, history) at the start of an episode."""

    def select_action(self, obs: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> np.ndarray:
        """Return one action, shape [D] float32."""


POLICIES: Registry[Callable[..., Policy]] = Registry(
    "policy",
    {
        "random": "vla.core.policy:RandomPolicy",
        "constant": "vla.core.policy:ConstantPolicy",
        "expert": "sim.experts:make_expert_policy",
        "vla": "policies.vla:make_vla_policy",
        "goal_imagination": "policies.goal_imagination:make_goal_imagination_policy",
    },
)


def list_policies() -> list[str]:
    return POLICIES.names()


def get_policy_class(name: str) -> Callable[..., Policy]:
    return POLICIES.get(name)


def make_policy(name: str, **kwargs: Any) -> Policy:
    """Instantiate the registered policy `name` with keyword arguments."""
    return get_policy_class(name)(**kwargs)


class RandomPolicy:
    """Uniform random EE-delta actions within `scale` per translation/rotation dim; gripper in {0, 1}."""

    def __init__(self, action_dim: int = ACTION_DIM, scale: float = 0.02, seed: int = 0):
        self.action_dim, self.scale, self._seed = action_dim, scale, seed
        self._rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(self._seed if seed is None else seed)

    def select_action(self, obs, info=None) -> np.ndarray:
        a = self._rng.uniform(-self.scale, self.scale, size=self.action_dim).astype(np.float32)
        a[-1] = float(self._rng.integers(0, 2))
        return a


class ConstantPolicy:
    """Always returns the same action (default: hold still, gripper open). Useful for plumbing tests."""

    def __init__(self, action: Any = None, action_dim: int = ACTION_DIM):
        if action is None:
            action = np.zeros(action_dim, dtype=np.float32)
            action[-1] = 1.0
        self.action = np.array(action, dtype=np.float32, copy=True)

    def reset(self, seed: int | None = None) -> None:
        pass

    def select_action(self, obs, info=None) -> np.ndarray:
        return self.action.copy()

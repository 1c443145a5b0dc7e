"""Vector envs: `make_vector_env` builds a `gymnasium.vector.AsyncVectorEnv` of table-top envs.

Each sub-process owns its own PyBullet client. Observations hold a `gymnasium.spaces.Text` instruction,
which shared memory cannot carry, so the env uses pipes (`shared_memory=False`); autoreset is disabled
so `vla.core.rollout.run_episodes_vector` decides which seed each sub-env runs next.

    venv = make_vector_env(2, task="pick", image_size=128)
    results = run_episodes_vector(venv, lambda i: make_expert("pick"), seeds=task_seeds("pick", "train", 8))
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.vector import AsyncVectorEnv, AutoresetMode

from sim import ENV_ID
from sim.tasks import check_split, get_task


def _make(kwargs: dict[str, Any]):
    return gym.make(ENV_ID, **kwargs)  # ENV_ID is registered by importing `sim` (this module's package)


class _EnvFn:
    """A picklable env constructor (lambdas do not survive the 'spawn' start method)."""

    def __init__(self, kwargs: dict[str, Any]):
        self.kwargs = dict(kwargs)

    def __call__(self):
        return _make(self.kwargs)


def make_vector_env(num_envs: int, context: str | None = None, **env_kwargs: Any) -> AsyncVectorEnv:
    """`num_envs` sub-process table-top envs with the same keyword arguments as `gymnasium.make`."""
    if num_envs < 1:
        raise ValueError(f"num_envs: expected >= 1, got {num_envs}")
    get_task(env_kwargs.get("task", "pick"))  # fail here, not inside a worker
    check_split(env_kwargs.get("split", "train"))
    return AsyncVectorEnv(
        [_EnvFn(env_kwargs) for _ in range(num_envs)],
        shared_memory=False,
        context=context,
        autoreset_mode=AutoresetMode.DISABLED,
    )

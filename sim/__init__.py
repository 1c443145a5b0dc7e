"""PyBullet table-top tasks with a Franka Panda behind the gymnasium API.

Importing `sim` registers the gymnasium id "vla/Tabletop-v0" (entry point "sim.env:TabletopEnv", itself
imported only by `gymnasium.make`). That one registration stays an import side effect because
`gymnasium.make(id)` looks the id up in gymnasium's own registry, including inside AsyncVectorEnv workers
that unpickle a `sim.vector` constructor, so the id must exist once `sim` is imported. Tasks and the
scripted experts are not registered here: they are entries of the explicit tables `sim.tasks.TASKS` and
`vla.core.policy.POLICIES` ("expert" -> `sim.experts`), imported on first use.

    import gymnasium, sim
    env = gymnasium.make(sim.ENV_ID, task="pick", split="train", image_size=128)
    expert = make_policy("expert", task="pick")     # vla.core.policy.make_policy
"""

from __future__ import annotations

import gymnasium

ENV_ID = "vla/Tabletop-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="sim.env:TabletopEnv", disable_env_checker=True)

from sim.tasks import list_tasks, task_seeds  # noqa: E402

__all__ = ["ENV_ID", "list_tasks", "task_seeds"]

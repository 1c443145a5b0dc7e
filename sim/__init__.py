"""PyBullet table-top tasks with a Franka Panda behind the gymnasium API.

Importing `sim` registers the gymnasium id "vla/Tabletop-v0" (see `sim.env.TabletopEnv`) and the scripted
experts in the policy registry (`make_policy("expert", task=...)`):

    import gymnasium, sim
    env = gymnasium.make("vla/Tabletop-v0", task="pick", split="train", image_size=128)
    expert = sim.experts.make_expert("pick")
"""

from __future__ import annotations

import gymnasium

ENV_ID = "vla/Tabletop-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="sim.env:TabletopEnv", disable_env_checker=True)

from sim import concept_tasks, experts, goal_tasks, tasks  # noqa: E402, F401  (registries: tasks, "expert")
from sim.tasks import list_tasks, task_seeds  # noqa: E402

__all__ = ["ENV_ID", "experts", "goal_tasks", "list_tasks", "task_seeds", "tasks"]

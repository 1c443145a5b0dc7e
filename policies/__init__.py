"""Policies on top of the models: the VLA checkpoint policy (`policies.vla`), goal imagination
(`policies.goal_imagination`) and the action-chunk wrappers (`policies.wrappers`). The Policy protocol and
the policy registry, which names these entries without importing them, live in `vla.core.policy`;
`list_policies()` and `make_policy(name, **kwargs)` are re-exported here, so `policies.list_policies()`
names every built-in (random, constant, expert, vla, goal_imagination) with no other import, and
`policies.make_policy("vla", checkpoint=RUN)` imports only the module of the policy it builds."""

from vla.core.policy import POLICIES, list_policies, make_policy

__all__ = ["POLICIES", "list_policies", "make_policy"]

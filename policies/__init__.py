"""Policies on top of the models: the VLA checkpoint policy (`policies.vla`), goal imagination
(`policies.goal_imagination`) and the action-chunk wrappers (`policies.wrappers`). The Policy protocol and
the policy registry, which names these entries without importing them, live in `vla.core.policy`."""

"""Policies: the Policy protocol shared by simulation rollouts, evaluation and the ROS 2 node, a
decorator registry, and simple reference policies (random, constant)."""

from policies import goal_imagination as _goal_imagination  # noqa: F401  (registers "goal_imagination")
from vla.core.policy import Policy, get_policy_class, list_policies, make_policy, register_policy

__all__ = ["Policy", "register_policy", "make_policy", "list_policies", "get_policy_class"]

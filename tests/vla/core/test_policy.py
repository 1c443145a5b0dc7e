"""Contract tests for the reference policies, and the policy registry's errors."""

import numpy as np
import pytest

from vla.core.policy import POLICIES, Policy, list_policies, make_policy
from vla.core.types import ACTION_DIM


@pytest.mark.parametrize("name", ["random", "constant"])
def test_reference_policies_follow_the_contract(name):
    policy = make_policy(name)
    assert isinstance(policy, Policy)
    obs = {"state": np.zeros(15, np.float32), "instruction": "lift the red cube"}
    policy.reset(seed=3)
    a1 = [policy.select_action(obs) for _ in range(5)]
    policy.reset(seed=3)
    a2 = [policy.select_action(obs) for _ in range(5)]
    for x, y in zip(a1, a2):
        assert x.shape == (ACTION_DIM,) and x.dtype == np.float32 and np.all(np.isfinite(x))
        np.testing.assert_array_equal(x, y)  # reset(seed) makes a policy reproducible
    assert obs["state"].sum() == 0  # the observation is never mutated


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown policy 'no-such-policy'.*'random'"):
        make_policy("no-such-policy")
    with pytest.raises(ValueError, match="already registered"):
        POLICIES.register("random", object)
    assert {"random", "constant", "expert", "vla", "goal_imagination"} <= set(list_policies())

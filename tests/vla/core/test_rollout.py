"""The shared rollout loop: observers see every step, errors end one episode, vector envs run seeds, and
`run_rollouts` gives the same episodes in one env and in a vector env."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AsyncVectorEnv

import sim  # noqa: F401  (registers vla/Tabletop-v0)
from sim.experts import make_expert
from sim.vector import make_vector_env
from vla.core.policy import ConstantPolicy
from vla.core.rollout import EpisodeResult, Observer, run_episode, run_episodes_vector, run_rollouts

SMALL = dict(task="pick", cameras=("static",), image_size=32, depth=False)


class Log:
    def __init__(self):
        self.starts, self.steps, self.ends, self.final = [], [], [], None

    def on_episode_start(self, obs, info):
        self.starts.append(obs["state"].copy())

    def on_step(self, obs, action, reward, terminated, truncated, info):
        self.steps.append((obs["state"].copy(), action.copy(), terminated, truncated))

    def on_final_observation(self, obs):  # the optional hook
        self.final = obs["state"].copy()

    def on_episode_end(self, result):
        self.ends.append(result)


class Exploding:
    def __init__(self, at):
        self.at, self.n = at, 0

    def reset(self, seed=None):
        self.n = 0

    def select_action(self, obs, info=None):
        self.n += 1
        if self.n > self.at:
            raise RuntimeError("boom")
        return np.array([0, 0, 0, 0, 0, 0, 1], np.float32)


def test_run_episode_with_observer():
    env = gym.make("vla/Tabletop-v0", **SMALL)
    log = Log()
    assert isinstance(log, Observer)
    res = run_episode(env, make_expert("pick"), seed=4, observers=[log])
    env.close()
    assert isinstance(res, EpisodeResult) and res.success and res.error is None
    assert res.task == "pick" and res.seed == 4 and res.split == "train" and res.instruction
    assert len(log.steps) == res.length and log.ends == [res]
    # on_step gets the observation the action was chosen from: the first one is the reset observation
    np.testing.assert_array_equal(log.steps[0][0], log.starts[0])
    assert log.steps[-1][2] is True  # terminated on success
    assert log.final is not None and not np.array_equal(log.final, log.steps[-1][0])  # the end state


def test_policy_error_ends_the_episode_not_the_run():
    env = gym.make("vla/Tabletop-v0", **SMALL)
    res = run_episode(env, Exploding(at=2), seed=0)
    assert res.error and "RuntimeError: boom" in res.error and res.length == 2 and not res.success
    bad = run_episode(env, Exploding(at=10), seed=1, max_steps=3)
    assert bad.error is None and bad.length == 3
    env.close()


def test_vector_rollout_runs_all_seeds_in_order():
    venv = make_vector_env(2, **SMALL)
    logs = {}

    def observers(seed):
        logs[seed] = Log()
        return [logs[seed]]

    try:
        results = run_episodes_vector(venv, lambda i: make_expert("pick"), [3, 1, 2], observers)
    finally:
        venv.close()
    assert [r.seed for r in results] == [3, 1, 2]
    assert all(r.success for r in results), results
    assert all(len(logs[r.seed].steps) == r.length for r in results)
    assert logs[1].steps and logs[1].starts[0].shape == (15,)
    assert all(logs[r.seed].final is not None for r in results)
    assert all(r.instruction and r.task == "pick" and r.split == "train" for r in results)


def test_vector_rollout_rejects_autoreset_and_bad_policy_actions():
    fns = [lambda: gym.make("vla/Tabletop-v0", **SMALL)]
    venv = AsyncVectorEnv(fns, shared_memory=False)
    try:
        with pytest.raises(ValueError, match="autoreset_mode"):
            run_episodes_vector(venv, lambda i: make_expert("pick"), [0])
    finally:
        venv.close()
    venv = make_vector_env(1, **SMALL)
    try:
        (res,) = run_episodes_vector(venv, lambda i: ConstantPolicy(np.full(7, np.nan)), [0])
    finally:
        venv.close()
    assert res.error and "finite" in res.error and res.length == 0
    with pytest.raises(ValueError, match="unknown task"):
        make_vector_env(2, task="juggle")


def test_run_rollouts_picks_the_loop_and_stops():
    """One env and a vector env give the same episodes in seed order; one policy for the single env
    (factory index 0); `stop` is checked before each episode starts."""
    built = []

    def factory(i):
        built.append(i)
        return make_expert("pick")

    ends = []

    def observers(seed):
        log = Log()
        ends.append((seed, log))
        return [log]

    env = gym.make("vla/Tabletop-v0", **SMALL)
    try:
        single = run_rollouts(env, factory, [5, 2, 7], observers)
        stopped = run_rollouts(env, factory, [5, 2, 7], observers, stop=lambda: len(ends) >= 4)
    finally:
        env.close()
    assert built == [0, 0] and [r.seed for r in single] == [5, 2, 7]
    assert [r.seed for r in stopped] == [5]  # 3 episodes observed before, one more, then stop
    assert all(len(log.steps) == r.length for (_, log), r in zip(ends, single))
    venv = make_vector_env(2, **SMALL)
    try:
        vector = run_rollouts(venv, factory, [5, 2, 7], progress="pick")
        none_left = run_rollouts(venv, factory, [5, 2, 7], stop=lambda: True)
    finally:
        venv.close()
    assert built[2:] == [0, 1, 0, 1]
    key = [(r.seed, r.success, r.length, r.instruction) for r in single]
    assert key == [(r.seed, r.success, r.length, r.instruction) for r in vector]
    assert none_left == []


def test_replay_policy_plays_back_copies_and_ends_with_a_clear_error():
    from sim.env import TabletopEnv
    from vla.core.rollout import ReplayPolicy

    actions = np.array([[0.01, 0, 0, 0, 0, 0, 1], [0, 0.01, 0, 0, 0, 0, 1]], np.float32)
    policy = ReplayPolicy(actions)
    env = TabletopEnv(task="pick", cameras=(), depth=False)
    try:
        short = run_episode(env, policy, 0, max_steps=2)
        over = run_episode(env, policy, 0)  # reset rewinds; a third step has no recorded action
    finally:
        env.close()
    assert short.error is None and short.length == 2
    assert over.length == 2 and "ReplayPolicy: only 2 recorded actions" in over.error
    policy.actions[0][0] = 9.0
    assert actions[0, 0] == np.float32(0.01)  # the caller's array is never touched

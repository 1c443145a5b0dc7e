"""Scripted experts solve their tasks on a few fixed seeds (the full 100-seed figure is a benchmark)."""

import numpy as np
import pytest

from sim.env import SWAP_INSTRUCTION, TabletopEnv
from sim.experts import make_expert
from sim.tasks import task_seeds
from vla.core.policy import Policy, make_policy
from vla.core.rollout import run_episode

TASKS = ["pick", "place", "push", "stack"]
SMALL = dict(cameras=(), depth=False)  # state-only: experts read privileged state, no rendering needed


@pytest.mark.parametrize("task", TASKS)
def test_expert_solves_fixed_seeds(task):
    env = TabletopEnv(task=task, **SMALL)
    expert = make_expert(task)
    assert isinstance(expert, Policy)
    results = [run_episode(env, expert, s) for s in task_seeds(task, "train", 3)]
    results.append(run_episode(env, expert, task_seeds(task, "heldout", 1)[0]))
    env.close()
    assert all(r.success and r.error is None for r in results), results
    assert all(r.length < env.horizon for r in results)


@pytest.mark.parametrize("task", ["pick", "pick_colour", "place", "push", "stack"])
def test_expert_follows_the_swapped_instruction(task):
    """The expert reads the swapped target/goal from `info["privileged"]`, so it solves the new instruction;
    the old instruction's success never holds on the way (push skips scenes where it would)."""
    env = TabletopEnv(task=task, split="heldout", **SMALL)
    expert, seen = make_expert(task), _OriginalSuccessLog()
    for seed in (1_000_001, 1_000_003):
        res = run_episode(env, expert, seed, [seen], reset_options={SWAP_INSTRUCTION: True})
        assert res.success and res.error is None, res
        assert res.instruction != env.original_layout.instruction
    env.close()
    assert seen.steps > 0 and not seen.original


class _OriginalSuccessLog:
    def __init__(self):
        self.steps, self.original = 0, False

    def on_episode_start(self, obs, info):
        assert info["original_success"] is False

    def on_step(self, obs, action, reward, terminated, truncated, info):
        self.steps += 1
        self.original = self.original or info["original_success"]

    def on_episode_end(self, result):
        pass


@pytest.mark.parametrize("task", ["pick", "push"])
def test_noisy_expert_still_succeeds_and_differs(task):
    env = TabletopEnv(task=task, **SMALL)
    seed = task_seeds(task, "train", 5)[4]
    clean, noisy = make_expert(task), make_expert(task, noise=0.004, seed=7)
    actions = {}
    for name, pol in (("clean", clean), ("noisy", noisy)):
        log = _ActionLog()
        res = run_episode(env, pol, seed, observers=[log])
        assert res.success, (name, res)
        actions[name] = np.stack(log.actions)
    env.close()
    n = min(len(actions["clean"]), len(actions["noisy"]))
    assert not np.allclose(actions["clean"][:n], actions["noisy"][:n])


class _ActionLog:
    def __init__(self):
        self.actions = []

    def on_episode_start(self, obs, info):
        self.actions = []

    def on_step(self, obs, action, reward, terminated, truncated, info):
        self.actions.append(action)

    def on_episode_end(self, result):
        pass


def test_expert_needs_privileged_info_and_never_mutates_it():
    expert = make_expert("pick")
    env = TabletopEnv(task="pick", **SMALL)
    obs, info = env.reset(seed=0)
    before = np.asarray(info["privileged"]["object_poses"]).copy()
    a = expert.select_action(obs, info)
    assert a.shape == (7,) and a.dtype == np.float32 and np.all(np.isfinite(a))
    np.testing.assert_array_equal(np.asarray(info["privileged"]["object_poses"]), before)
    with pytest.raises(ValueError, match="privileged"):
        expert.select_action(obs, None)
    env.close()


def test_expert_is_in_the_policy_registry():
    assert make_policy("expert", task="stack").task == "stack"
    with pytest.raises(ValueError, match="unknown task"):
        make_policy("expert", task="juggle")
    with pytest.raises(ValueError, match="noise"):
        make_expert("pick", noise=-1.0)


def _carrying(task: str, off: float, z: float) -> tuple[object, dict]:
    """A carry expert in its carry phase and a privileged state with the target held `off` metres (x) from
    the goal, the grasp point at height `z`."""
    env = TabletopEnv(task=task, **SMALL)
    _, info = env.reset(seed=task_seeds(task, "train", 1)[0])
    env.close()
    expert = make_expert(task)
    expert._set("carry")
    priv = dict(info["privileged"])
    goal_xy, _ = expert._goal_xy_z(priv)
    obj = np.array([goal_xy[0] + off, goal_xy[1], z - 0.01])
    poses = [np.asarray(q).copy() for q in priv["object_poses"]]
    poses[0][:3] = obj
    touching = [i == 0 for i in range(len(poses))]
    priv.update(
        ee_position=obj + [0, 0, 0.01], object_poses=poses, object_touching=touching, gripper_width=0.03
    )
    return expert, {"privileged": priv}


@pytest.mark.parametrize(
    "task, off, descends", [("place", 0.06, False), ("place", 0.025, True), ("stack", 0.012, True)]
)
def test_carry_is_a_funnel_not_a_hidden_phase(task, off, descends):
    """Carrying and lowering are one function of the state: a centimetre or two off the goal the hand
    already descends (a policy that stops short still finishes); far from it, it stays up."""
    expert, info = _carrying(task, off, z=0.16)
    a = expert.select_action({}, info)
    assert a[0] < 0 and a[6] == 0.0  # towards the goal, gripper closed
    assert (a[2] < -0.005) == descends, a


def test_carry_expert_releases_near_the_goal_at_the_bottom():
    expert, info = _carrying("place", 0.02, z=0.0)
    _, release_z = expert._goal_xy_z(info["privileged"])
    expert, info = _carrying("place", 0.02, z=release_z + 0.01)  # at the release height, 2 cm off centre
    expert.select_action({}, info)
    assert expert.phase == "release" and expert.select_action({}, info)[6] == 1.0


@pytest.mark.parametrize("task", ["pick", "place"])
def test_gripper_label_switches_on_the_frame_that_reaches_the_bottom(task):
    """The first frame within CLOSE_ABOVE of the grasp height is labelled "close" (and for place, the
    first frame near the release height "open"): the frames around a switch differ by a visible
    distance, not by the 4 mm of one proportional step, so a policy can tell them apart."""
    from sim.experts import CLOSE_ABOVE

    env = TabletopEnv(task=task, **SMALL)
    expert = make_expert(task)
    obs, info = env.reset(seed=task_seeds(task, "train", 1)[0])
    expert.reset(0)
    closes = []
    for _ in range(env.horizon):
        priv = info["privileged"]
        grasp_z = max(float(priv["object_poses"][0][2]) - 0.004, 0.014)
        low = float(priv["ee_position"][2]) < grasp_z + CLOSE_ABOVE and float(priv["gripper_width"]) > 0.075
        a = expert.select_action(obs, info)
        if low:
            closes.append(float(a[6]))
        obs, _, term, trunc, info = env.step(a)
        if term or trunc:
            break
    env.close()
    assert term and closes and closes[0] == 0.0, closes


class Still:
    """A policy that never moves (gripper open)."""

    def reset(self, seed=None):
        pass

    def select_action(self, obs, info=None):
        return np.array([0, 0, 0, 0, 0, 0, 1], np.float32)


def _benchmark(name):
    """benchmarks/<name>.py as a module (benchmarks/ is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_milestones_probe_sees_the_expert_grasp_carry_and_place():
    """benchmarks/milestones.py reads where an episode got to; the expert reaches every milestone and a
    policy that never moves reaches none."""
    mod = _benchmark("milestones")

    env = TabletopEnv(task="place", **SMALL)
    seed = task_seeds("place", "train", 1)[0]
    rows = [
        mod.episode_milestones(env, make_expert("place"), seed),
        mod.episode_milestones(env, Still(), seed),
    ]
    env.close()
    s = mod.summarise(rows)
    assert rows[0]["success"] and rows[0]["lifted"] > 0.1 and rows[0]["held"] > 3 and rows[0]["near_goal"] > 0
    assert (s["held"], s["near_goal"], s["success"]) == (1, 1, 1)
    assert rows[1]["length"] == env.horizon and rows[1]["lifted"] < 0.05


def test_milestones_probe_names_the_wrong_object_and_the_wrong_goal():
    """An expert told the wrong target grasps another object (`held_other`, never `held`); one told the
    wrong goal carries the named cube to another object (`near_other`, never `near_goal`)."""
    mod = _benchmark("milestones")

    class Misled:
        """The task's expert, reading privileged state in which `key` names object `index` instead."""

        def __init__(self, task, key, index):
            self.expert, self.key, self.index = make_expert(task), key, index

        def reset(self, seed=None):
            self.expert.reset(seed)

        def select_action(self, obs, info=None):
            priv = {**info["privileged"], self.key: self.index}
            if self.key == "goal_index":
                priv["goal_position"] = np.asarray(priv["object_poses"][self.index][:3])
            return self.expert.select_action(obs, {**info, "privileged": priv})

    for task, key in (("pick", "target_index"), ("stack", "goal_index")):
        env = TabletopEnv(task=task, **SMALL)
        crowded = (
            s
            for s in task_seeds(task, "train", 20)
            if len(env.reset(seed=s)[1]["privileged"]["object_names"]) > 2
        )
        seed = next(crowded)  # a scene with a third object (index 2) to be misled to
        row = mod.episode_milestones(env, Misled(task, key, 2), seed)
        env.close()
        if task == "pick":
            assert row["held_other"] > 3 and row["held"] == 0 and not row["success"], row
        else:
            assert row["held"] > 3 and row["near_other"] > 3 and row["near_goal"] == 0, row
            assert row["closest_goal"] > 0.04 and not row["success"], row


def test_expert_takeover_probe_runs_the_experts_dims_for_the_first_steps():
    """benchmarks/expert_takeover.py: a policy that never moves succeeds when the expert takes over every
    dimension, fails alone, and fails when the expert only steers x/y (it never descends or closes)."""
    mod = _benchmark("expert_takeover")

    env = TabletopEnv(task="pick", **SMALL)
    seed = task_seeds("pick", "train", 1)[0]
    try:
        assert mod.run_with_takeover(env, Still(), "pick", seed, range(7), 1000)
        assert not mod.run_with_takeover(env, Still(), "pick", seed, range(7), 0)
        assert not mod.run_with_takeover(env, Still(), "pick", seed, [0, 1], 1000)
    finally:
        env.close()

"""Goal-specified tasks (arrange, stack_goal): goal point clouds, ambiguity, splits, success, experts."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config import env_kwargs
from sim.env import TabletopEnv
from sim.experts import make_expert
from sim.goal_cloud import GoalView, farthest_point_sample, render_goal_cloud
from sim.goal_tasks import ARRANGE_TOLERANCE, goal_task_names, stack_order
from sim.scene import COLOURS
from sim.tasks import REGION_X, REGION_Y, Snapshot, get_task, heldout_pair, heldout_stack_pair, task_rng_seed
from sim.tasks import task_seeds as seeds_of
from sim.vector import make_vector_env
from vla.core.rollout import run_episode
from vla.core.types import GOAL_COLORS_KEY, GOAL_POINTS_KEY

GOAL_TASKS = ["arrange", "stack_goal"]
FAST = dict(cameras=(), depth=False, goal_image_size=96, goal_points=256)  # state + goal cloud only


def _layout(task, split, seed):
    return get_task(task).sample(np.random.default_rng(task_rng_seed(task, split, seed)), split)


def _distance_to_objects(points, objects, poses):
    """[N,K] distance (metres) of each point to each object's solid at pose (x, y, z_centre, yaw)."""
    out = []
    for o, (x, y, z, yaw) in zip(objects, poses):
        d = np.asarray(points, np.float64) - [x, y, z]
        c, s = np.cos(yaw), np.sin(yaw)
        local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)
        half = np.asarray(o.size) / 2
        if o.shape == "cylinder":
            r = np.hypot(local[:, 0], local[:, 1])
            gap = np.stack([np.maximum(r - half[0], 0), np.maximum(np.abs(local[:, 2]) - half[2], 0)], 1)
        else:
            gap = np.maximum(np.abs(local) - half, 0)
        out.append(np.linalg.norm(gap, axis=1))
    return np.stack(out, axis=1)


def test_goal_tasks_are_registered():
    assert set(GOAL_TASKS) <= set(goal_task_names())
    assert "pick" not in goal_task_names()


@pytest.mark.parametrize("task", GOAL_TASKS)
def test_gymnasium_check_env(task):
    env = TabletopEnv(
        task=task,
        render_mode="rgb_array",
        cameras=("static",),
        image_size=32,
        depth=False,
        goal_image_size=64,
        goal_points=128,
    )
    check_env(env)
    obs, _ = env.reset(seed=3)
    assert obs[GOAL_POINTS_KEY].shape == (128, 3) and obs[GOAL_POINTS_KEY].dtype == np.float32
    assert obs[GOAL_COLORS_KEY].shape == (128, 3) and obs[GOAL_COLORS_KEY].dtype == np.uint8
    assert env.observation_space.contains(obs)
    env.close()


def test_other_tasks_have_no_goal_cloud():
    env = TabletopEnv(task="pick", **FAST)
    obs, info = env.reset(seed=0)
    assert GOAL_POINTS_KEY not in obs and GOAL_POINTS_KEY not in env.observation_space.spaces
    assert "goal_poses" not in info["privileged"]
    env.close()


@pytest.mark.parametrize("task", GOAL_TASKS)
def test_goal_cloud_lies_on_the_objects_at_their_goal_poses(task):
    env = TabletopEnv(task=task, cameras=(), depth=False, goal_points=512)
    for seed in (seeds_of(task, "train", 2)[1], seeds_of(task, "heldout", 1)[0]):
        obs, info = env.reset(seed=seed)
        lay = env.layout
        pts = obs[GOAL_POINTS_KEY]
        at_goal = _distance_to_objects(pts, lay.objects, lay.goal_poses)  # [N,K]
        assert at_goal.min(axis=1).max() < 0.01  # every point is on some object at its goal pose
        counts = np.bincount(at_goal.argmin(axis=1), minlength=len(lay.objects))
        assert np.all(counts >= 10), counts  # and every object shows up
        starts = [(o.x, o.y, o.size[2] / 2, o.yaw) for o in lay.objects]
        moved = [
            i
            for i, (a, g) in enumerate(zip(starts, lay.goal_poses))
            if np.hypot(a[0] - g[0], a[1] - g[1]) > 0.05
        ]
        assert moved
        at_start = _distance_to_objects(pts, [lay.objects[i] for i in moved], [starts[i] for i in moved])
        assert at_start.min() > 0.01  # nothing is left where a moved object starts
        # colours: each object's points carry its colour (shaded: compare chromaticities)
        cols = obs[GOAL_COLORS_KEY].astype(np.float64)
        palette = {c: np.asarray(v) / np.sum(v) for c, v in COLOURS.items()}
        for i, o in enumerate(lay.objects):
            mean = cols[at_goal.argmin(axis=1) == i].mean(axis=0)
            nearest = min(palette, key=lambda c: np.linalg.norm(palette[c] - mean / mean.sum()))
            assert nearest == o.colour, (o.name, mean)
        priv = info["privileged"]
        assert np.asarray(priv["goal_poses"]).shape == (len(lay.objects), 7)
        # the initial scene is restored after rendering the goal
        poses = np.asarray(priv["object_poses"])
        np.testing.assert_allclose(poses[:, :2], [[o.x, o.y] for o in lay.objects], atol=2e-3)
    env.close()


@pytest.mark.parametrize("task", GOAL_TASKS)
def test_determinism_per_seed(task):
    a, b = TabletopEnv(task=task, **FAST), TabletopEnv(task=task, **FAST)
    b.reset(seed=99)  # a different history must not matter
    oa, _ = a.reset(seed=7)
    ob, _ = b.reset(seed=7)
    np.testing.assert_array_equal(oa[GOAL_POINTS_KEY], ob[GOAL_POINTS_KEY])
    np.testing.assert_array_equal(oa[GOAL_COLORS_KEY], ob[GOAL_COLORS_KEY])
    act = np.array([0.02, -0.01, -0.02, 0, 0, 0.05, 1], np.float32)
    for _ in range(3):
        oa, *_ = a.step(act)
        ob, *_ = b.step(act)
    np.testing.assert_array_equal(oa["state"], ob["state"])
    np.testing.assert_array_equal(oa[GOAL_POINTS_KEY], ob[GOAL_POINTS_KEY])  # fixed for the episode
    oc, _ = a.reset(seed=8)
    assert not np.array_equal(oc[GOAL_POINTS_KEY], ob[GOAL_POINTS_KEY])
    a.close()
    b.close()


@pytest.mark.parametrize("task", GOAL_TASKS)
def test_instruction_alone_does_not_determine_the_goal(task):
    by_text: dict[str, list] = {}
    for seed in range(40):
        lay = _layout(task, "train", seed)
        by_text.setdefault(lay.instruction, []).append(lay)
    pairs = [v for v in by_text.values() if len(v) >= 2]
    assert pairs
    for lays in pairs:
        a, b = lays[0], lays[1]
        assert a.goal_poses != b.goal_poses
        if task == "stack_goal":  # the tower order is not in the words either
            towers = {tuple(lay.objects[i].colour for i in stack_order(lay)) for lay in lays}
            assert len(towers) > 1
    for lay in (lay for v in by_text.values() for lay in v):
        assert not any(o.colour in lay.instruction for o in lay.objects)


@settings(max_examples=40, deadline=None)
@given(
    task=st.sampled_from(GOAL_TASKS),
    split=st.sampled_from(["train", "heldout"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_layouts_are_deterministic_valid_and_split(task, split, seed):
    lay = _layout(task, split, seed)
    assert lay == _layout(task, split, seed) and len(lay.goal_poses) == len(lay.objects)
    names = [o.name for o in lay.objects]
    assert len(set(names)) == len(names)
    n = len(stack_order(lay)) if task == "stack_goal" else 0
    words = {2: "two", 3: "three"}.get(n, "")
    assert lay.instruction in [t.format(n=words) for t in get_task(task).templates]
    if task == "arrange":
        moved = [i for i, (o, g) in enumerate(zip(lay.objects, lay.goal_poses)) if (o.x, o.y) != g[:2]]
        assert 2 <= len(moved) <= 3
        spots = [(o.x, o.y, o.radius) for o in lay.objects] + [
            (*lay.goal_poses[i][:2], lay.objects[i].radius) for i in moved
        ]
        for i in range(len(spots)):
            for j in range(i + 1, len(spots)):
                assert (
                    np.hypot(spots[i][0] - spots[j][0], spots[i][1] - spots[j][1]) > spots[i][2] + spots[j][2]
                )
        for i in moved:
            assert (
                REGION_X[0] <= lay.goal_poses[i][0] <= REGION_X[1]
                and REGION_Y[0] <= lay.goal_poses[i][1] <= REGION_Y[1]
            )
        held = [heldout_pair(o.colour, o.shape) for o in lay.objects]
        assert held[0] if split == "heldout" else not any(held)
    else:
        order = stack_order(lay)
        assert 2 <= len(order) <= 3
        base = lay.goal_poses[order[0]]
        for k, i in enumerate(order):
            assert np.allclose(lay.goal_poses[i][:3], (base[0], base[1], 0.02 + 0.04 * k))
        colours = [lay.objects[i].colour for i in order]
        held = any(heldout_stack_pair(colours[k + 1], colours[k]) for k in range(len(order) - 1))
        assert held == (split == "heldout")


def _snap(lay, positions):
    k = len(lay.objects)
    return Snapshot(
        np.asarray(positions, np.float64),
        np.tile([0, 0, 0, 1.0], (k, 1)),
        np.zeros(k, bool),
        np.zeros((0, 3)),
        lay,
    )


@pytest.mark.parametrize("task", GOAL_TASKS)
def test_success_compares_the_world_with_the_goal(task):
    t = get_task(task)
    lay = _layout(task, "train", 4)
    goal = np.array([g[:3] for g in lay.goal_poses])
    start = np.array([(o.x, o.y, o.size[2] / 2) for o in lay.objects])
    assert t.success(_snap(lay, goal)) and not t.success(_snap(lay, start))
    if task == "arrange":
        off = goal.copy()
        off[0, 0] += ARRANGE_TOLERANCE + 0.005
        assert not t.success(_snap(lay, off))
    else:
        order = stack_order(lay)
        swapped = goal.copy()
        swapped[[order[0], order[1]]] = goal[[order[1], order[0]]]  # same tower, wrong order
        assert not t.success(_snap(lay, swapped))
    touching = _snap(lay, goal)
    touching.touching[:] = True
    assert not t.success(touching)


@pytest.mark.parametrize("task", GOAL_TASKS)
def test_expert_solves_fixed_seeds(task):
    env = TabletopEnv(task=task, **FAST)
    expert = make_expert(task)
    results = [
        run_episode(env, expert, s) for s in (seeds_of(task, "train", 1)[0], seeds_of(task, "heldout", 1)[0])
    ]
    env.close()
    assert all(r.success and r.error is None for r in results), results
    assert all(r.length < env.horizon for r in results)


def test_goal_options_and_bad_input():
    kw = env_kwargs(
        {"cameras": ["static"], "goal_cameras": ["static", "wrist"], "goal_points": 64}, {"name": "arrange"}
    )
    assert kw["goal_cameras"] == ("static", "wrist") and kw["task"] == "arrange"
    env = TabletopEnv(**{**kw, "image_size": 32, "depth": False, "goal_image_size": 64})
    obs, _ = env.reset(seed=1)
    assert obs[GOAL_POINTS_KEY].shape == (64, 3)
    env.close()
    with pytest.raises(ValueError, match="unknown goal camera 'top'"):
        TabletopEnv(
            task="arrange", goal_cameras=("top",), **{k: v for k, v in FAST.items() if k != "goal_image_size"}
        )
    with pytest.raises(ValueError, match="goal_points"):
        TabletopEnv(task="arrange", cameras=(), goal_points=0)


def test_vector_env_batches_goal_clouds():
    venv = make_vector_env(2, task="stack_goal", **FAST)
    obs, infos = venv.reset(seed=[3, 4])
    assert obs[GOAL_POINTS_KEY].shape == (2, 256, 3) and obs[GOAL_COLORS_KEY].dtype == np.uint8
    assert not np.array_equal(obs[GOAL_POINTS_KEY][0], obs[GOAL_POINTS_KEY][1])
    single = TabletopEnv(task="stack_goal", **FAST)
    ref, _ = single.reset(seed=4)
    np.testing.assert_array_equal(obs[GOAL_POINTS_KEY][1], ref[GOAL_POINTS_KEY])  # same cloud in a worker
    single.close()
    venv.close()


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 300), frac=st.floats(0.01, 1.0), seed=st.integers(0, 2**16))
def test_farthest_point_sample_is_unique_and_spread(m, frac, seed):
    pts = np.random.default_rng(seed).uniform(-1, 1, (m, 3)).astype(np.float32)
    n = max(1, int(m * frac))
    idx = farthest_point_sample(pts, n, start=seed % m)
    assert idx[0] == seed % m and len(set(idx.tolist())) == n
    np.testing.assert_array_equal(idx, farthest_point_sample(pts, n, start=seed % m))
    if n >= 2:  # the greedy sample's spacing: no chosen point is closer to the others than the next pick
        chosen = pts[idx[:-1]]
        gap = np.linalg.norm(chosen[:, None] - chosen[None], axis=-1) + np.eye(n - 1) * 9
        d_last = np.linalg.norm(chosen - pts[idx[-1]], axis=1).min()
        assert gap.min() >= d_last - 1e-6


def test_goal_cloud_bad_input_is_a_clear_error():
    env = TabletopEnv(task="arrange", **FAST)
    env.reset(seed=0)
    view = [GoalView("static", env.camera_extrinsics("static"), 52.0)]
    ids = env.object_ids
    far = [(3.0, 3.0, 0.02, 0.0)] * len(ids)  # every object out of the workspace box
    with pytest.raises(ValueError, match="goal cloud: cameras \\['static'\\] see only 0"):
        render_goal_cloud(env.client, ids, far, ids, view, 64, 64, env._renderer, 32, 0)
    with pytest.raises(ValueError, match="goal_poses: expected"):
        render_goal_cloud(env.client, ids, far[:1], ids, view, 64, 64, env._renderer, 32, 0)
    priv = env.privileged()  # the failed renders left the scene as it was
    np.testing.assert_allclose(
        np.asarray(priv["object_poses"])[:, :2], [[o.x, o.y] for o in env.layout.objects], atol=2e-3
    )
    env.close()


def test_arrange_one_moves_exactly_one_object_and_its_expert_solves_it():
    assert "arrange_one" in goal_task_names()
    for split in ("train", "heldout"):
        for seed in range(6):
            lay = _layout("arrange_one", split, seed)
            moved = [i for i, (o, g) in enumerate(zip(lay.objects, lay.goal_poses)) if (o.x, o.y) != g[:2]]
            assert moved == [0] and len(lay.objects) == 2
            assert lay.instruction in get_task("arrange_one").templates
    # the parent's arrange layouts are unchanged by the variant's class options
    assert 2 <= sum((o.x, o.y) != g[:2] for o, g in zip(*_pair_of(_layout("arrange", "train", 0)))) <= 3
    env = TabletopEnv(task="arrange_one", **FAST)
    result = run_episode(env, make_expert("arrange_one"), seeds_of("arrange_one", "train", 1)[0])
    env.close()
    assert result.success and result.error is None and result.length < get_task("arrange_one").horizon


def _pair_of(lay):
    return lay.objects, lay.goal_poses

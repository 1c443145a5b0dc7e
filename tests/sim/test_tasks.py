"""Tasks: seeded layouts, disjoint splits, held-out attribute combinations, instructions, registries,
swapped instructions (the language check)."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.scene import COLOUR_NAMES, SHAPE_NAMES, ObjectSpec
from sim.tasks import (
    Layout,
    Snapshot,
    get_task,
    heldout_pair,
    heldout_stack_pair,
    list_tasks,
    swapped_layout,
    task_rng_seed,
    task_seeds,
)

TASKS = ["pick", "place", "push", "stack"]


def _layout(task: str, split: str, seed: int) -> Layout:
    return get_task(task).sample(np.random.default_rng(task_rng_seed(task, split, seed)), split)


def test_at_least_four_tasks():
    assert set(TASKS) <= set(list_tasks())


@pytest.mark.parametrize("task", TASKS)
def test_splits_are_disjoint(task):
    train, held = task_seeds(task, "train", 500), task_seeds(task, "heldout", 500)
    assert len(set(train)) == 500 and not set(train) & set(held)
    assert task_seeds(task, "train", 3) == train[:3]  # a prefix: growing n keeps earlier seeds


def test_heldout_combinations_never_appear_in_train():
    held = {(c, s) for c in COLOUR_NAMES for s in SHAPE_NAMES if heldout_pair(c, s)}
    assert 0 < len(held) < len(COLOUR_NAMES) * len(SHAPE_NAMES)
    for task in ("pick", "place", "push"):
        for seed in task_seeds(task, "train", 40):
            lay = _layout(task, "train", seed)
            assert not {(o.colour, o.shape) for o in lay.objects} & held
        targets = [_layout(task, "heldout", s).objects[0] for s in task_seeds(task, "heldout", 20)]
        assert all((o.colour, o.shape) in held for o in targets)
    for seed in task_seeds("stack", "train", 40):
        top, bottom = _layout("stack", "train", seed).objects[:2]
        assert not heldout_stack_pair(top.colour, bottom.colour)
    top, bottom = _layout("stack", "heldout", task_seeds("stack", "heldout", 1)[0]).objects[:2]
    assert heldout_stack_pair(top.colour, bottom.colour)


@settings(max_examples=60, deadline=None)
@given(
    task=st.sampled_from(TASKS),
    split=st.sampled_from(["train", "heldout"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_layouts_are_deterministic_and_valid(task, split, seed):
    a, b = _layout(task, split, seed), _layout(task, split, seed)
    assert a == b
    names = [o.name for o in a.objects]
    assert len(set(names)) == len(names)  # every object is uniquely described by colour + shape
    assert names[a.target] in a.instruction or task == "stack"
    pts = [(o.x, o.y, o.radius) for o in a.objects]
    pts += [(f.x, f.y, f.radius) for f in a.fixtures if f.kind != "marker"]
    for i in range(len(pts)):
        for j in range(i + 1, len(pts)):
            assert np.hypot(pts[i][0] - pts[j][0], pts[i][1] - pts[j][1]) > pts[i][2] + pts[j][2]
    if task == "stack":
        top, bottom = a.objects[0], a.objects[1]
        assert f"{top.colour} cube" in a.instruction and f"{bottom.colour} cube" in a.instruction
    if task in ("place", "push"):
        assert a.fixtures[a.goal_index].kind.split()[0] in a.instruction


def test_instructions_have_paraphrases():
    for task in TASKS:
        templates = {_layout(task, "train", s).template for s in range(60)}
        assert len(templates) >= 3, task


def test_bad_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown task 'juggle'"):
        task_seeds("juggle", "train", 3)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        task_seeds("pick", "val", 3)
    with pytest.raises(ValueError, match="n: expected"):
        task_seeds("pick", "train", -1)


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_pick_colour_distractors_never_share_the_target_colour(split):
    from sim.experts import PickExpert, make_expert

    seen_counts = set()
    for seed in range(60):
        lay = _layout("pick_colour", split, seed)
        target = lay.objects[lay.target]
        others = [o for i, o in enumerate(lay.objects) if i != lay.target]
        assert 1 <= len(others) <= 3 and all(o.colour != target.colour for o in others)
        assert heldout_pair(target.colour, target.shape) == (split == "heldout")
        assert target.name in lay.instruction and lay.goal_kind == "lift"
        seen_counts.add(len(others))
    assert seen_counts == {1, 2, 3}
    assert isinstance(make_expert("pick_colour"), PickExpert)  # a task variant gets its parent's expert


# ---- swapped instructions (the language check, vla.eval.language) ------------------------------------
SWAP_SEEDS = [("train", 1), ("train", 2), ("heldout", 1_000_001), ("heldout", 1_000_003)]


@pytest.mark.parametrize("split,seed", SWAP_SEEDS)
@pytest.mark.parametrize("task", ["pick", "pick_colour", "place", "push", "stack"])
def test_swapped_layout_keeps_the_scene_and_names_the_new_target(task, split, seed):
    original, new = swapped_layout(task, split, seed)
    assert new is not None and swapped_layout(task, split, seed) == (original, new)  # a function of the seed
    assert original == _layout(task, split, seed)  # the seed's own layout, untouched
    assert (new.objects, new.fixtures, new.goal_kind, new.template) == (
        original.objects,
        original.fixtures,
        original.goal_kind,
        original.template,
    )
    assert (new.target, new.goal_index) != (original.target, original.goal_index)
    assert new.instruction != original.instruction
    templates = get_task(task).templates
    if task in ("pick", "pick_colour"):
        assert new.goal_index == original.goal_index and new.target != original.target
        name = new.objects[new.target].name
        assert [o.name for o in new.objects].count(name) == 1
        assert new.instruction == templates[new.template].format(o=name)
        if task == "pick_colour":
            colours = [o.colour for o in new.objects]
            assert colours.count(new.objects[new.target].colour) == 1
    elif task == "place":
        kind = new.fixtures[new.goal_index].kind
        assert {kind, original.fixtures[original.goal_index].kind} == {"tray", "plate"}
        assert ("in the tray" if kind == "tray" else "on the plate") in new.instruction
        assert new.objects[new.target].name in new.instruction
    elif task == "push":
        assert (original.goal_index, new.goal_index) == (0, 1)
        assert new.fixtures[1].name in new.instruction and new.fixtures[0].name not in new.instruction
    else:
        assert (new.target, new.goal_index) == (original.goal_index, original.target)
        a, b = new.objects[new.target].colour, new.objects[new.goal_index].colour
        assert new.instruction == templates[new.template].format(a=a, b=b)
        assert heldout_stack_pair(a, b) == (split == "heldout")  # the swap stays in its split


def test_tasks_without_an_alternative_swap_to_none():
    for task in ("pick_concepts", "arrange", "arrange_one", "stack_goal"):
        assert swapped_layout(task, "heldout", task_seeds(task, "heldout", 1)[0])[1] is None, task
    # pick_colour: both distractors orange, so no other object has a colour of its own
    assert swapped_layout("pick_colour", "heldout", 1_000_014)[1] is None
    # push: the straight push to the other marker slides the object over the old one
    for seed in (1_000_002, 1_000_006):
        assert swapped_layout("push", "heldout", seed)[1] is None


def test_pick_swap_skips_objects_whose_name_is_not_unique():
    red, blue, green = (
        ObjectSpec("cube", c, 0.5, y, 0.0) for c, y in (("red", 0), ("blue", 0.1), ("green", -0.1))
    )
    twin = ObjectSpec("cube", "blue", 0.4, 0.1, 0.0)
    layout = Layout((red, blue, twin), (), 0, "lift", -1, "lift the red cube", 0)
    assert get_task("pick").swapped(layout, np.random.default_rng(0)) is None
    with_green = Layout((red, blue, twin, green), (), 0, "lift", -1, "lift the red cube", 0)
    for s in range(5):
        new = get_task("pick").swapped(with_green, np.random.default_rng(s))
        assert new.target == 3 and new.instruction == "lift the green cube"


def test_stack_success_follows_the_layout_indices():
    original, new = swapped_layout("stack", "train", 1)
    h = [o.size[2] for o in original.objects]
    positions = np.array([[o.x, o.y, o.size[2] / 2] for o in original.objects])
    positions[1] = [
        positions[0, 0],
        positions[0, 1],
        h[0] + h[1] / 2,
    ]  # object 1 on object 0: the swap's goal
    snap = Snapshot(
        positions=positions,
        quats=np.tile([0.0, 0.0, 0.0, 1.0], (len(positions), 1)),
        touching=np.zeros(len(positions), dtype=bool),
        fixture_positions=np.zeros((0, 3)),
        layout=new,
    )
    task = get_task("stack")
    assert task.success(snap) and not task.success(dataclasses.replace(snap, layout=original))

"""Tasks: seeded layouts, disjoint splits, held-out attribute combinations, instructions, registries."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.scene import COLOUR_NAMES, SHAPE_NAMES
from sim.tasks import (
    Layout,
    get_task,
    heldout_pair,
    heldout_stack_pair,
    list_tasks,
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

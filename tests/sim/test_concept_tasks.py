"""`pick_concepts`: every instruction uses exactly one held-out concept and refers to the layout's target,
resolved here independently of the task (words by the scene-VQA synonym tables; relations by the pixel
columns of the real env's static camera after reset); the success check is pick's; the expert solves it."""

import re

import gymnasium as gym
import numpy as np
import pytest

import sim
from sim.concept_tasks import instruction_concepts
from sim.experts import make_expert
from sim.scene import COLOUR_NAMES, SHAPE_NAMES
from sim.scene_vqa import HELDOUT_COLOURS, HELDOUT_NOUNS, MIN_PIXEL_GAP
from sim.tasks import PickTask, get_task, task_rng_seed

CANON = {**{c: c for c in COLOUR_NAMES}, **{s: c for c, ss in HELDOUT_COLOURS.items() for s in ss}}
NOUN = {**{s: s for s in SHAPE_NAMES}, **{v: k for k, v in HELDOUT_NOUNS.items()}}
PICK_PHRASE = re.compile(r"^(?:lift|pick up|grab|raise) the (.+?)(?: and raise it| off the table)?$")


def _layout(split, seed):
    rng = np.random.default_rng(task_rng_seed("pick_concepts", split, seed))
    return get_task("pick_concepts").sample(rng, split)


def _referent(phrase, names, cols):
    """Index of the object a phrase refers to (None if none or several): names [(colour, shape)],
    cols [K] pixel columns of the static camera."""
    m = re.fullmatch(r"object (left|right) of the (\w+) (\w+)", phrase)
    if m:
        ref = names.index((m.group(2), m.group(3)))
        sign = -1 if m.group(1) == "left" else 1
        hits = [k for k in range(len(names)) if k != ref and sign * (cols[k] - cols[ref]) > 0]
        return hits[0] if len(hits) == 1 else None
    if phrase in ("leftmost object", "rightmost object"):
        return int(np.argmin(cols) if phrase.startswith("left") else np.argmax(cols))
    colour, noun = phrase.split()
    hits = [k for k, n in enumerate(names) if n == (CANON[colour], NOUN[noun])]
    return hits[0] if len(hits) == 1 else None


def _layout_columns(layout):
    from sim.concept_tasks import static_columns

    return static_columns(layout.objects)


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_instructions_use_one_heldout_concept_and_name_the_target(split):
    kinds = set()
    for seed in range(150):
        lay = _layout(split, seed)
        concepts = instruction_concepts(lay.instruction)
        assert len(concepts) == 1, lay.instruction
        kinds.add(concepts[0].split(":")[0])
        m = PICK_PHRASE.match(lay.instruction)
        assert m, lay.instruction
        names = [(o.colour, o.shape) for o in lay.objects]
        assert _referent(m.group(1), names, _layout_columns(lay)) == lay.target, lay.instruction
        pick = PickTask().sample(np.random.default_rng(task_rng_seed("pick_concepts", split, seed)), split)
        assert pick.objects == lay.objects and pick.target == lay.target  # pick's layout, other words
    assert kinds == {"colour", "noun", "relation"}


def test_relations_hold_in_the_rendered_scene():
    """Relations are checked against the real env: object poses after reset (objects settle) projected
    with the env's own static camera; each named side holds with at least half the generator's margin."""
    env = gym.make(sim.ENV_ID, task="pick_concepts", split="train", cameras=("static",), image_size=64)
    checked = 0
    try:
        for seed in range(60):
            obs, info = env.reset(seed=seed)
            phrase = PICK_PHRASE.match(obs["instruction"]).group(1)
            if "object" not in phrase:
                continue
            u = env.unwrapped
            K, T = u.camera_intrinsics("static"), np.linalg.inv(u.camera_extrinsics("static"))
            priv = info["privileged"]
            xyz = np.asarray(priv["object_poses"])[:, :3]  # [K,3]
            cam = (T @ np.c_[xyz, np.ones(len(xyz))].T).T  # [K,4] camera frame
            cols = K[0, 0] * cam[:, 0] / cam[:, 2] + K[0, 2]  # [K] pixel columns
            names = list(zip(priv["object_colours"], priv["object_shapes"], strict=True))
            assert _referent(phrase, names, cols) == 0, (seed, phrase)  # the target is object 0
            gaps = np.abs(cols[1:] - cols[0])
            assert gaps.min() >= MIN_PIXEL_GAP / 2 or "of the" in phrase, (seed, phrase, cols)
            checked += 1
            if checked == 6:
                break
    finally:
        env.close()
    assert checked == 6


def test_expert_succeeds_with_picks_success_check():
    env = gym.make(sim.ENV_ID, task="pick_concepts", split="heldout", cameras=(), depth=False)
    try:
        obs, info = env.reset(seed=sim.task_seeds("pick_concepts", "heldout", 1)[0])
        assert instruction_concepts(obs["instruction"])
        expert = make_expert("pick_concepts", seed=0)
        expert.reset(0)
        done, success = False, False
        while not done:
            obs, _, term, trunc, info = env.step(expert.select_action(obs, info))
            done, success = term or trunc, bool(info["is_success"])
    finally:
        env.close()
    assert success


ROBOT_TASKS = ("pick", "pick_colour", "place", "push", "stack")


def test_synonym_words_appear_in_no_training_instruction():
    """Every word `pick_colour_synonyms` uses for a colour or a shape is absent from every robot task's
    templates and from the colour and shape names that fill them (docs/backbones.md lists them)."""
    training_words = set(COLOUR_NAMES) | set(SHAPE_NAMES)
    for name in ROBOT_TASKS:
        for template in get_task(name).templates:
            training_words |= set(re.findall(r"[a-z]+", template))
    new_words = {s for ss in HELDOUT_COLOURS.values() for s in ss} | set(HELDOUT_NOUNS.values())
    assert new_words and not new_words & training_words


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_pick_colour_synonyms_names_the_target_in_new_words_only(split):
    task, base = get_task("pick_colour_synonyms"), get_task("pick_colour")
    for seed in range(40):
        rng = np.random.default_rng(seed)
        layout = task.sample(rng, split)
        plain = base.sample(np.random.default_rng(seed), split)
        assert layout.objects == plain.objects and layout.target == plain.target  # pick_colour's scene
        phrase = PICK_PHRASE.fullmatch(layout.instruction).group(1)
        colour, noun = phrase.split()
        target = layout.objects[layout.target]
        assert colour in HELDOUT_COLOURS[target.colour]
        assert NOUN[noun] == target.shape and (noun != target.shape) == (target.shape in HELDOUT_NOUNS)
    assert task.swapped(layout, np.random.default_rng(0)) is None

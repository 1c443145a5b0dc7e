"""Scene-VQA generator: answers agree with the simulator's state (re-simulated and recomputed from the
privileged poses here, independently of the generator), output reads back through the LLaVA reader, and
held-out concepts never occur in the robot tasks' language."""

import json
import re

import gymnasium as gym
import numpy as np
import pytest

import sim
from sim.experts import make_expert
from sim.scene import COLOUR_NAMES, PLATE_RADIUS, SHAPE_NAMES, TRAY_HALF, TRAY_WALL
from sim.scene_vqa import HELDOUT_COLOURS, HELDOUT_NOUNS, SceneVQAConfig, generate, heldout_concepts
from sim.tasks import get_task, list_tasks
from vla.data.vqa import VQASourceConfig, read_vqa

CANON = {**{c: c for c in COLOUR_NAMES}, **{s: c for c, ss in HELDOUT_COLOURS.items() for s in ss}}
NOUN = {**{s: s for s in (*SHAPE_NAMES, "tray", "plate")}, **{v: k for k, v in HELDOUT_NOUNS.items()}}


def _name(text):
    """'crimson box' -> ('red', 'cube')."""
    c, n = text.split()
    return CANON[c], NOUN[n]


def _replay(scene, size):
    """Re-simulate a scene from its record: privileged state and the static camera's pixel columns."""
    env = gym.make(
        sim.ENV_ID,
        task=scene["task"],
        split=scene["split"],
        cameras=("static",),
        image_size=size,
        depth=False,
    )
    obs, info = env.reset(seed=scene["seed"])
    expert = make_expert(scene["task"], seed=scene["seed"])
    expert.reset(scene["seed"])
    for _ in range(scene["rollout_steps"]):
        obs, _, _, _, info = env.step(expert.select_action(obs, info))
    u = env.unwrapped
    K, T = u.camera_intrinsics("static"), np.linalg.inv(u.camera_extrinsics("static"))
    priv = info["privileged"]
    env.close()
    xyz = np.asarray(priv["object_poses"])[:, :3]  # [K,3]
    cam = (T @ np.c_[xyz, np.ones(len(xyz))].T).T  # [K,4] camera frame
    cols = K[0, 0] * cam[:, 0] / cam[:, 2] + K[0, 2]  # [K] pixel column
    objs = {
        (c, s): (p, col) for c, s, p, col in zip(priv["object_colours"], priv["object_shapes"], xyz, cols)
    }
    fixtures = dict(zip(priv["fixture_kinds"], priv["fixture_positions"]))
    return objs, fixtures, obs["images/static"]


def _check(rec, objs, fixtures):
    q = rec["conversations"][0]["value"].split("\n")[1]
    a = rec["answers"][0]
    t = rec["question_type"]
    if t == "count" and q.startswith("How many objects"):
        assert int(a) == len(objs)
    elif t == "count":
        c = CANON[re.match(r"How many (\w+) objects", q).group(1)]
        assert int(a) == sum(k[0] == c for k in objs)
    elif t == "colour":
        shape = NOUN[re.match(r"What colour is the (\w+)\?", q).group(1)]
        assert [k[0] for k in objs if k[1] == shape] == [a]
    elif t == "shape":
        c = CANON[re.match(r"What shape is the (\w+) object\?", q).group(1)]
        assert [k[1] for k in objs if k[0] == c] == [a]
    elif t == "exists":
        key = _name(re.match(r"Is there a (\w+ \w+) in the scene\?", q).group(1))
        assert (key in objs) == (a == "yes")
    elif t == "relation" and "left or right" in q:
        m = re.match(r"Is the (\w+ \w+) left or right of the (\w+ \w+)\?", q)
        ua, ub = objs[_name(m.group(1))][1], objs[_name(m.group(2))][1]
        assert a == ("left" if ua < ub else "right") and abs(ua - ub) > 2
    elif t == "relation" and q.startswith("What is"):
        m = re.match(r"What is (left|right) of the (\w+ \w+)\?", q)
        ub = objs[_name(m.group(2))][1]
        side = [k for k, (_, u) in objs.items() if (u < ub if m.group(1) == "left" else u > ub)]
        assert [f"{c} {s}" for c, s in side] == [a]
    elif t == "relation":
        pick = min if "leftmost" in q else max
        assert " ".join(pick(objs, key=lambda k: objs[k][1])) == a
    elif t == "fixture":
        m = re.match(r"Is the (\w+ \w+) (in|on) the (\w+)\?", q)
        (x, y, z), kind = objs[_name(m.group(1))][0], NOUN[m.group(3)]
        d = np.array([x, y]) - fixtures[kind][:2]
        if kind == "tray":
            inside = bool(np.all(np.abs(d) <= TRAY_HALF - 2 * TRAY_WALL[0]))
        else:
            inside = bool(np.linalg.norm(d) <= PLATE_RADIUS)
        assert (inside and z < 0.06) == (a == "yes")
    else:
        return False
    return True


def test_generated_answers_agree_with_the_simulator(tmp_path):
    cfg = SceneVQAConfig(
        out=str(tmp_path / "svqa"),
        scenes=10,
        tasks=["place", "stack"],
        rollout_fraction=0.6,
        questions_per_scene=40,
        concept_rate=0.5,
        test_fraction=0.25,
        progress=False,
    )
    summary = generate(cfg)
    assert summary["test_records"] > 0 and summary["train_records"] > summary["test_records"]
    train, errors = read_vqa(VQASourceConfig(format="llava", path=str(tmp_path / "svqa" / "train.json")))
    assert errors.total_skipped == 0 and len(train) == summary["train_records"]
    assert train[0].load_images()[0].shape == (64, 64, 3)
    recs = json.loads((tmp_path / "svqa" / "train.json").read_text())
    recs += json.loads((tmp_path / "svqa" / "test.json").read_text())
    by_scene = {}
    for r in recs:
        by_scene.setdefault(json.dumps(r["scene"], sort_keys=True), []).append(r)
    checked, types, rolled, yes_in_fixture = 0, set(), 0, 0
    for key, rs in by_scene.items():
        scene = json.loads(key)
        objs, fixtures, _ = _replay(scene, 64)
        rolled += scene["rollout_steps"] > 0
        for r in rs:
            if _check(r, objs, fixtures):
                checked += 1
                types.add(r["question_type"])
                yes_in_fixture += r["question_type"] == "fixture" and r["answers"][0] == "yes"
    assert rolled >= 1 and checked >= 60, (rolled, checked)
    assert types >= {"count", "colour", "shape", "exists", "relation", "fixture"}, types
    assert {r["style"] for r in recs} == {"short", "detailed", "reasoning"}
    assert any(r["concepts"] for r in recs) and yes_in_fixture >= 1
    concepts = json.loads((tmp_path / "svqa" / "concepts.json").read_text())
    assert concepts["heldout"] == heldout_concepts() and concepts["used"]


def test_heldout_concepts_never_occur_in_robot_language():
    words = set()
    for name in list_tasks():
        for t in get_task(name).templates:
            words |= set(re.findall(r"[a-z]+", t.lower()))
    words |= set(COLOUR_NAMES) | set(SHAPE_NAMES) | {"tray", "plate", "marker", "grey", "white"}
    held = heldout_concepts()
    for w in held["colour_synonyms"] + held["object_words"]:
        assert w not in words, w
    for rel in held["relations"]:
        assert not set(rel.split()) - {"of", "to"} <= words, rel


def test_control_set_without_heldout_concepts(tmp_path):
    cfg = SceneVQAConfig(
        out=str(tmp_path / "ctl"), scenes=4, tasks=["pick"], include_heldout=False, progress=False
    )
    generate(cfg)
    recs = json.loads((tmp_path / "ctl" / "train.json").read_text())
    held = heldout_concepts()
    vocab = set(held["colour_synonyms"] + held["object_words"]) | {"left", "right", "leftmost", "closest"}
    for r in recs:
        assert not r["concepts"]
        assert not vocab & set(re.findall(r"[a-z]+", r["conversations"][0]["value"].lower())), r


def test_bad_config_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown question_types \\['colours'\\]"):
        generate(SceneVQAConfig(out=str(tmp_path / "x"), question_types=["colours"]))
    with pytest.raises(ValueError, match="styles must be"):
        generate(SceneVQAConfig(out=str(tmp_path / "x"), styles=["long"]))


def test_vqa_generate_command(tmp_path, capsys):
    from vla.cli import main as cli

    out = tmp_path / "cli"
    assert (
        cli(["vqa", "generate", str(out), "scenes=2", "tasks=[push]", "progress=false", "image_size=32"]) == 0
    )
    assert "2 scenes ->" in capsys.readouterr().err
    assert len(list((out / "images").glob("*.png"))) == 2
    assert cli(["vqa", "generate", str(out), "styles=[poem]", "progress=false"]) == 2
    assert "styles must be a non-empty subset" in capsys.readouterr().err

"""Scene-VQA generator: table-top scenes from the simulator with questions answered by its ground truth.

No web VQA data can be downloaded here, so co-training data comes from the simulator itself. Each scene is
a task reset (`gymnasium.make("vla/Tabletop-v0")`, any task and split), optionally followed by the scripted
expert's rollout (so objects end up in the tray, on the plate or stacked); the static camera's image is
saved as PNG and `info["privileged"]` (object poses, colours, shapes, fixtures) plus the camera's
intrinsics/extrinsics become `SceneFacts`. Questions (colour, shape, count, existence, left/right
relations, "what is left of X", "is X in the tray?", nearest object, captions) are asked in LLaVA's three
response styles: short answer, detailed description and reasoning. Output is LLaVA instruction JSON
(`train.json`, `test.json`, split by scene) + `images/`, read back by `vla.data.vqa` like any LLaVA set.

Held-out concepts (words and relations the robot demonstrations never use, sim/tasks.py templates) are
mixed in at rate `concept_rate`, and every record lists the ones it uses under `concepts`:
HELDOUT_COLOURS (colour synonyms), HELDOUT_NOUNS (new object/fixture words), HELDOUT_RELATIONS.

    vla vqa generate scenes=200 out=outputs/scene_vqa image_size=64
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim import ENV_ID
from sim.experts import make_expert
from sim.scene import COLOUR_NAMES, SHAPE_NAMES, fixture_contains, fixture_top
from sim.tasks import task_seeds
from vla.core.config import register_config
from vla.core.io import atomic_directory, atomic_write_bytes, atomic_write_json

# Held-out concepts: absent from every task template, colour and shape name the demonstrations use.
HELDOUT_COLOURS: dict[str, tuple[str, ...]] = {
    "red": ("crimson", "scarlet"),
    "green": ("emerald",),
    "blue": ("azure", "cobalt"),
    "yellow": ("golden",),
    "purple": ("violet",),
    "orange": ("tangerine",),
}
# Colour synonyms a training run may put into its instructions (`vla train instruction_synonyms=colours`):
# disjoint from HELDOUT_COLOURS, so the held-out words stay unseen (tests/sim/test_concept_tasks.py).
TRAIN_COLOUR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "red": ("ruby", "cherry"),
    "green": ("lime", "jade"),
    "blue": ("navy", "sapphire"),
    "yellow": ("lemon", "canary"),
    "purple": ("lavender", "plum"),
    "orange": ("apricot", "amber"),
}
HELDOUT_NOUNS: dict[str, str] = {"cube": "box", "block": "brick", "cylinder": "can", "tray": "bin"}
HELDOUT_RELATIONS: tuple[str, ...] = ("left of", "right of", "leftmost", "rightmost", "closest to")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
STYLES = ("short", "detailed", "reasoning")
SHORT_SUFFIX = "Answer with a single word or phrase."
REF_ANSWERS = 10  # VQAv2 keeps ten human answers; generated answers are repeated to that count
MIN_PIXEL_GAP = 4.0  # |du| in pixels (at 64 px; scaled with image size) below which left/right is unclear


def heldout_concepts() -> dict[str, list[str]]:
    """The documented held-out concept list (also written to `<out>/concepts.json`)."""
    return {
        "colour_synonyms": sorted(s for v in HELDOUT_COLOURS.values() for s in v),
        "object_words": sorted(HELDOUT_NOUNS.values()),
        "relations": list(HELDOUT_RELATIONS),
    }


@dataclass(frozen=True)
class ObjFact:
    colour: str
    shape: str
    xyz: tuple[float, float, float]
    u: float  # pixel column in the static image (smaller = further left)

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class SceneFacts:
    """Ground truth of one rendered scene: objects, fixtures and what contains what."""

    objects: tuple[ObjFact, ...]
    fixtures: tuple[tuple[str, str, tuple[float, float, float]], ...]  # (kind, colour, xyz)
    width: int

    def inside(self, i: int, kind: str) -> bool:
        """Object i rests within the footprint of the (first) fixture of `kind`, low enough to be in it."""
        for k, _, fxyz in self.fixtures:
            if k == kind:
                o = self.objects[i]
                low = o.xyz[2] < fixture_top(k) + 0.05
                return fixture_contains(k, np.array(fxyz[:2]), np.array(o.xyz[:2])) and low
        return False

    @property
    def gap(self) -> float:
        return MIN_PIXEL_GAP * self.width / 64.0


def project_u(point: Sequence[float], K: np.ndarray, world_T_cam: np.ndarray) -> float:
    """Pixel column of a world point (OpenCV camera: x right, z forward)."""
    p = np.linalg.inv(world_T_cam) @ np.array([*point[:3], 1.0])  # [4] camera frame
    return float(K[0, 0] * p[0] / p[2] + K[0, 2])


def facts_from_privileged(priv: dict[str, Any], K: np.ndarray, world_T_cam: np.ndarray, width: int):
    """SceneFacts from the env's `info["privileged"]` and the static camera's K / world_T_cam."""
    poses = np.asarray(priv["object_poses"], dtype=np.float64).reshape(-1, 7)  # [K,7]
    objs = tuple(
        ObjFact(c, s, tuple(float(v) for v in pose[:3]), project_u(pose[:3], K, world_T_cam))
        for c, s, pose in zip(priv["object_colours"], priv["object_shapes"], poses, strict=True)
    )
    fixes = tuple(
        (kind, name.split()[0], tuple(float(v) for v in pos))
        for kind, name, pos in zip(
            priv["fixture_kinds"], priv["fixture_names"], priv["fixture_positions"], strict=True
        )
    )
    return SceneFacts(objs, fixes, int(width))


# ----------------------------------------------------------------------------------- question makers
@dataclass
class QA:
    """One generated question: its type, text, short answer and the held-out concepts it uses."""

    qtype: str
    question: str
    answer: str
    concepts: list[str] = field(default_factory=list)
    reasoning: str = ""  # the facts behind the answer (reasoning style)


class Words:
    """Picks surface words: a held-out synonym with probability `rate`, else the demonstrations' word."""

    def __init__(self, rng: np.random.Generator, rate: float):
        self.rng, self.rate = rng, float(rate)

    def _use(self) -> bool:
        return self.rate > 0 and float(self.rng.random()) < self.rate

    def colour(self, c: str, used: list[str]) -> str:
        if self._use():
            syn = HELDOUT_COLOURS[c][int(self.rng.integers(len(HELDOUT_COLOURS[c])))]
            used.append(f"colour:{syn}")
            return syn
        return c

    def noun(self, n: str, used: list[str]) -> str:
        if n in HELDOUT_NOUNS and self._use():
            used.append(f"noun:{HELDOUT_NOUNS[n]}")
            return HELDOUT_NOUNS[n]
        return n

    def name(self, o: ObjFact, used: list[str]) -> str:
        return f"{self.colour(o.colour, used)} {self.noun(o.shape, used)}"


Maker = Callable[[SceneFacts, Words, np.random.Generator], list[QA]]
QUESTIONS: dict[str, Maker] = {}


def question(name: str) -> Callable[[Maker], Maker]:
    def deco(fn: Maker) -> Maker:
        QUESTIONS[name] = fn
        return fn

    return deco


def _unique(facts: SceneFacts, attr: str) -> list[ObjFact]:
    vals = [getattr(o, attr) for o in facts.objects]
    return [o for o in facts.objects if vals.count(getattr(o, attr)) == 1]


@question("colour")
def q_colour(facts, words, rng):
    out = []
    for o in _unique(facts, "shape"):
        used: list[str] = []
        q = f"What colour is the {words.noun(o.shape, used)}?"
        out.append(QA("colour", q, o.colour, used, f"The {o.shape} on the table is {o.colour}."))
    return out


@question("shape")
def q_shape(facts, words, rng):
    out = []
    for o in _unique(facts, "colour"):
        used: list[str] = []
        q = f"What shape is the {words.colour(o.colour, used)} object?"
        out.append(QA("shape", q, o.shape, used, f"The only {o.colour} object is a {o.shape}."))
    return out


@question("count")
def q_count(facts, words, rng):
    n = len(facts.objects)
    names = ", ".join(o.name for o in facts.objects)
    out = [
        QA("count", "How many objects are there?", str(n), [], f"I see {names}: {n} object{'s' * (n != 1)}.")
    ]
    c = COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
    used: list[str] = []
    k = sum(o.colour == c for o in facts.objects)
    q = f"How many {words.colour(c, used)} objects are there?"
    out.append(QA("count", q, str(k), used, f"Objects that are {c}: {k}."))
    return out


@question("exists")
def q_exists(facts, words, rng):
    c = COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
    s = SHAPE_NAMES[int(rng.integers(len(SHAPE_NAMES)))]
    used: list[str] = []
    q = f"Is there a {words.colour(c, used)} {words.noun(s, used)} in the scene?"
    yes = any(o.colour == c and o.shape == s for o in facts.objects)
    why = f"The objects are {', '.join(o.name for o in facts.objects)}."
    return [QA("exists", q, "yes" if yes else "no", used, why)]


def _side(a: ObjFact, b: ObjFact, gap: float) -> str | None:
    d = a.u - b.u
    return None if abs(d) < gap else ("left" if d < 0 else "right")


@question("relation")
def q_relation(facts, words, rng):
    """Left/right between named objects, what is left/right of X (exactly one answer), extremes."""
    out, objs, gap = [], _unique(facts, "colour"), facts.gap
    for a in objs:
        for b in objs:
            side = _side(a, b, gap) if a is not b else None
            if side is None:
                continue
            used = ["relation:left of", "relation:right of"]
            q = f"Is the {words.name(a, used)} left or right of the {words.name(b, used)}?"
            out.append(QA("relation", q, side, used, f"In the image the {a.name} is {side} of the {b.name}."))
            others = [o for o in facts.objects if o is not b and _side(o, b, gap) == side]
            ambiguous = [o for o in facts.objects if o is not b and _side(o, b, gap) is None]
            if len(others) == 1 and not ambiguous:
                used = [f"relation:{side} of"]
                q = f"What is {side} of the {words.name(b, used)}?"
                why = f"Only the {others[0].name} is {side} of the {b.name}."
                out.append(QA("relation", q, others[0].name, used, why))
    if len(facts.objects) >= 2:
        order = sorted(facts.objects, key=lambda o: o.u)
        for side, o, nxt in (("leftmost", order[0], order[1]), ("rightmost", order[-1], order[-2])):
            if abs(o.u - nxt.u) >= gap:
                why = "From left to right: " + ", ".join(x.name for x in order) + "."
                out.append(QA("relation", f"Which object is {side}?", o.name, [f"relation:{side}"], why))
    return out


@question("fixture")
def q_fixture(facts, words, rng):
    out = []
    for kind, colour, fxyz in facts.fixtures:
        if kind not in ("tray", "plate"):
            continue
        prep = "in" if kind == "tray" else "on"
        for i, o in enumerate(facts.objects):
            used: list[str] = []
            q = f"Is the {words.name(o, used)} {prep} the {words.noun(kind, used)}?"
            yes = facts.inside(i, kind)
            why = f"The {o.name} is {'' if yes else 'not '}{prep} the {colour} {kind}."
            out.append(QA("fixture", q, "yes" if yes else "no", used, why))
        d = [math.dist(o.xyz[:2], fxyz[:2]) for o in facts.objects]
        order = np.argsort(d)
        if len(d) == 1 or d[order[1]] - d[order[0]] > 0.03:
            used = ["relation:closest to"]
            q = f"Which object is closest to the {words.noun(kind, used)}?"
            best = facts.objects[int(order[0])]
            out.append(QA("closest", q, best.name, used, f"The {best.name} is nearest the {kind}."))
    return out


def _a(name: str) -> str:
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def caption(facts: SceneFacts) -> str:
    """Short caption: the objects and fixtures on the table."""
    things = [_a(o.name) for o in facts.objects] + [_a(f"{c} {k}") for k, c, _ in facts.fixtures]
    body = things[0] if len(things) == 1 else ", ".join(things[:-1]) + " and " + things[-1]
    return f"{body[0].upper()}{body[1:]} on a wooden table next to a robot arm."


def description(facts: SceneFacts) -> str:
    """Detailed description: counts, left-to-right order, fixtures and what is in them."""
    order = sorted(facts.objects, key=lambda o: o.u)
    n = len(order)
    parts = [f"The table holds {NUMBER_WORDS[n] if n <= 10 else n} object{'s' * (n != 1)}."]
    parts.append("From left to right: " + ", ".join(f"the {o.name}" for o in order) + ".")
    for kind, colour, _ in facts.fixtures:
        inside = [o.name for i, o in enumerate(facts.objects) if kind != "marker" and facts.inside(i, kind)]
        where = f" holding the {' and the '.join(inside)}" if inside else ""
        parts.append(f"There is {_a(colour + ' ' + kind)}{where}.")
    parts.append("A robot arm stands at the edge of the table.")
    return " ".join(parts)


def make_records(facts: SceneFacts, rng: np.random.Generator, cfg: SceneVQAConfig, image: str, scene: dict):
    """LLaVA records for one scene: sampled questions in the configured styles, plus caption/description."""
    words = Words(rng, cfg.concept_rate if cfg.include_heldout else 0.0)
    qas = [
        qa for name in cfg.question_types if name in QUESTIONS for qa in QUESTIONS[name](facts, words, rng)
    ]
    if not cfg.include_heldout:
        qas = [qa for qa in qas if not qa.concepts]
    pick = rng.permutation(len(qas))[: cfg.questions_per_scene]
    recs = []
    for k in pick:
        qa = qas[int(k)]
        style = cfg.styles[int(rng.integers(len(cfg.styles)))]
        if style == "short":
            human, gpt = f"{qa.question}\n{SHORT_SUFFIX}", qa.answer
        elif style == "reasoning":
            human, gpt = (
                f"{qa.question} Explain your reasoning.",
                f"{qa.reasoning} So the answer is {qa.answer}.",
            )
        else:
            human, gpt = (
                f"{qa.question} Answer in a full sentence.",
                f"{qa.reasoning} The answer is {qa.answer}.",
            )
        recs.append(_record(image, human, gpt, qa.answer, qa.qtype, style, qa.concepts, scene))
    if "caption" in cfg.question_types:
        recs.append(
            _record(
                image,
                "Give a short caption of the image.",
                caption(facts),
                None,
                "caption",
                "short",
                [],
                scene,
            )
        )
    if "description" in cfg.question_types and "detailed" in cfg.styles:
        desc = description(facts)
        recs.append(
            _record(image, "Describe the scene in detail.", desc, None, "description", "detailed", [], scene)
        )
    return recs


def _record(image, human, gpt, answer, qtype, style, concepts, scene) -> dict[str, Any]:
    ref = gpt if answer is None else answer
    return {
        "image": image,
        "conversations": [{"from": "human", "value": f"<image>\n{human}"}, {"from": "gpt", "value": gpt}],
        "answers": [ref] * REF_ANSWERS,
        "question_type": qtype,
        "style": style,
        "concepts": sorted(set(concepts)),
        "scene": scene,
    }


# ----------------------------------------------------------------------------------- generation
@register_config("vqa_generate")
@dataclass
class SceneVQAConfig:
    """`vla vqa generate`: how many scenes from which tasks, image size, questions and held-out concepts."""

    out: str = "outputs/scene_vqa"
    scenes: int = 200
    tasks: list[str] = field(default_factory=lambda: ["pick", "place", "push", "stack"])
    split: str = "train"
    seed: int = 0  # scene k of task t uses env seed `seed + k` (train/held-out ranges come from the split)
    image_size: int = 64
    rollout_fraction: float = 0.3  # scenes rendered after the expert's rollout (objects moved/placed)
    questions_per_scene: int = 6
    question_types: list[str] = field(
        default_factory=lambda: [
            "colour",
            "shape",
            "count",
            "exists",
            "relation",
            "fixture",
            "caption",
            "description",
        ]
    )
    styles: list[str] = field(default_factory=lambda: list(STYLES))
    concept_rate: float = 0.3
    include_heldout: bool = True
    test_fraction: float = 0.2
    progress: bool = True

    def check(self) -> None:
        unknown = [
            q for q in self.question_types if q not in QUESTIONS and q not in ("caption", "description")
        ]
        if unknown:
            raise ValueError(f"vqa generate: unknown question_types {unknown}; expected {sorted(QUESTIONS)}")
        bad = [s for s in self.styles if s not in STYLES]
        if bad or not self.styles:
            raise ValueError(
                f"vqa generate: styles must be a non-empty subset of {list(STYLES)}, got {self.styles}"
            )
        if self.scenes < 1 or self.image_size < 16 or not self.tasks:
            raise ValueError("vqa generate: need scenes >= 1, image_size >= 16 and at least one task")
        if not 0 <= self.test_fraction < 1 or not 0 <= self.rollout_fraction <= 1:
            raise ValueError("vqa generate: test_fraction must be in [0, 1), rollout_fraction in [0, 1]")


def render_scene(env, task: str, seed: int, rollout: bool) -> tuple[np.ndarray, dict[str, Any], int]:
    """Reset, optionally run the expert (noise 0) to the end: (static image, privileged, steps)."""
    obs, info = env.reset(seed=seed)
    steps = 0
    if rollout:
        expert = make_expert(task, seed=seed)
        expert.reset(seed)
        done = False
        while not done:
            obs, _, term, trunc, info = env.step(expert.select_action(obs, info))
            steps, done = steps + 1, term or trunc
    return obs["images/static"], info["privileged"], steps


def generate(cfg: SceneVQAConfig) -> dict[str, Any]:
    """Render scenes, write `<out>/{train,test}.json`, `images/*.png`, `concepts.json`; return a summary."""
    import gymnasium as gym
    from PIL import Image
    from tqdm import tqdm

    cfg.check()
    rng = np.random.default_rng(cfg.seed)
    envs = {
        t: gym.make(
            ENV_ID, task=t, split=cfg.split, cameras=("static",), image_size=cfg.image_size, depth=False
        )
        for t in cfg.tasks
    }
    records: list[list[dict[str, Any]]] = []
    out = Path(cfg.out)
    try:
        with atomic_directory(out) as tmp:
            for k in tqdm(range(cfg.scenes), desc="scene-vqa", disable=not cfg.progress):
                task = cfg.tasks[k % len(cfg.tasks)]
                env = envs[task]
                seed = task_seeds(task, cfg.split, cfg.seed + k // len(cfg.tasks) + 1)[-1]
                rollout = bool(rng.random() < cfg.rollout_fraction)
                rgb, priv, steps = render_scene(env, task, seed, rollout)
                u = env.unwrapped
                facts = facts_from_privileged(
                    priv, u.camera_intrinsics("static"), u.camera_extrinsics("static"), cfg.image_size
                )
                buf = io.BytesIO()
                Image.fromarray(rgb).save(buf, format="PNG")
                image = f"images/{k:06d}.png"
                atomic_write_bytes(tmp / image, buf.getvalue())
                scene = {"task": task, "split": cfg.split, "seed": seed, "rollout_steps": steps}
                records.append(make_records(facts, rng, cfg, image, scene))
            n_test = int(round(cfg.test_fraction * len(records)))
            split = {"train": records[n_test:], "test": records[:n_test]}
            counts = {}
            for name, scenes in split.items():
                flat = [dict(r, id=f"{name}-{i:07d}") for i, r in enumerate(r for s in scenes for r in s)]
                atomic_write_json(tmp / f"{name}.json", flat)
                counts[name] = len(flat)
            used = sorted({c for s in records for r in s for c in r["concepts"]})
            atomic_write_json(tmp / "concepts.json", {"heldout": heldout_concepts(), "used": used})
    finally:
        for env in envs.values():
            env.close()
    return {"out": str(out), "scenes": cfg.scenes, **{f"{k}_records": v for k, v in counts.items()}}

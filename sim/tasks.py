"""Table-top tasks: seeded layouts, instruction paraphrases, train/held-out splits and success checks.

A task is a `Task` subclass named in the `TASKS` table (its `name` attribute is its key; the table
also names the tasks of `sim.concept_tasks` and `sim.goal_tasks`, imported on first use).
`sample(rng, split)` returns a `Layout` (plain specs of objects and fixtures, which object is the target,
what the goal is, the instruction); it is a pure function of the RNG, so `reset(seed=s)` fully determines
the scene. `success(snapshot)` judges a `Snapshot` of the simulated world (object poses, which objects
touch the robot). Splits: `task_seeds` gives disjoint train/held-out seed ranges, and the held-out split
samples attribute combinations (colour-shape pairs; colour pairs for `stack`) that never occur in train,
so generalisation is measurable. `swapped(layout, rng)` gives the same scene with another target or
goal and an instruction naming it (the language check of `vla.eval.language`; None where the task has no
alternative), and `swapped_layout` derives both layouts from a seed exactly as the env's
`reset(options={"swap_instruction": True})` does.

    layout = get_task("pick").sample(np.random.default_rng(task_rng_seed("pick", "train", 3)), "train")
    original, swapped = swapped_layout("place", "heldout", 1_000_001)
    # "place the orange block in the tray" -> "place the orange block on the plate"
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from sim.scene import (
    COLOUR_NAMES,
    SHAPE_NAMES,
    FixtureSpec,
    ObjectSpec,
    fixture_contains,
    fixture_top,
)
from vla.core.registry import Registry

SPLITS = ("train", "heldout")
HELDOUT_SEED_OFFSET = 1_000_000
REGION_X = (0.38, 0.64)
REGION_Y = (-0.2, 0.2)
LIFT_HEIGHT = 0.05  # pick: object bottom this far above the table


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    return split


def heldout_pair(colour: str, shape: str) -> bool:
    """Colour-shape pairs reserved for the held-out split (each colour has one, each shape two)."""
    return (COLOUR_NAMES.index(colour) + SHAPE_NAMES.index(shape)) % 3 == 0


def heldout_stack_pair(top: str, bottom: str) -> bool:
    """(top, bottom) colour pairs reserved for the held-out split of `stack`."""
    return (COLOUR_NAMES.index(bottom) - COLOUR_NAMES.index(top)) % len(COLOUR_NAMES) == 3


@dataclass(frozen=True)
class Layout:
    """Everything a seed fixes: objects, fixtures, target object index, goal, instruction."""

    objects: tuple[ObjectSpec, ...]
    fixtures: tuple[FixtureSpec, ...]
    target: int
    goal_kind: str  # "lift" | "fixture" | "object" | "pose" (goal tasks: every object has a goal pose)
    goal_index: int  # fixture index ("fixture"), object index ("object"), -1 ("lift", "pose")
    instruction: str
    template: int
    # Goal-specified tasks (sim.goal_tasks): per object (x, y, z of its centre, yaw); () for the others.
    goal_poses: tuple[tuple[float, float, float, float], ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """The world as success checks see it. K objects, F fixtures."""

    positions: np.ndarray  # [K,3] object centres
    quats: np.ndarray  # [K,4] xyzw
    touching: np.ndarray  # [K] bool: object in contact with the robot
    fixture_positions: np.ndarray  # [F,3]
    layout: Layout = field(repr=False)


class Task:
    """Base class: shared sampling helpers. Subclasses set `name`, `horizon`, `templates`."""

    name: str = ""
    horizon: int = 60
    templates: tuple[str, ...] = ()
    has_goal_cloud: bool = False  # True: the env renders the goal scene and adds goal/points, goal/colors

    def sample(self, rng: np.random.Generator, split: str) -> Layout:
        raise TypeError(f"{type(self).__name__} must define sample()")  # base class is never registered

    def success(self, snap: Snapshot) -> bool:
        raise TypeError(f"{type(self).__name__} must define success()")

    def swapped(self, layout: Layout, rng: np.random.Generator) -> Layout | None:
        """`layout`'s scene (identical objects, poses, fixtures) with another target or goal and the
        instruction re-rendered with the same template naming it; None where the scene offers no
        alternative. The base class has none (goal-specified and concept tasks keep it)."""
        return None

    # ---- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _pair(rng: np.random.Generator, split: str, exclude: set[tuple[str, str]]) -> tuple[str, str]:
        want_heldout = split == "heldout"
        pairs = [
            (c, s)
            for c in COLOUR_NAMES
            for s in SHAPE_NAMES
            if heldout_pair(c, s) == want_heldout and (c, s) not in exclude
        ]
        c, s = pairs[int(rng.integers(len(pairs)))]
        return c, s

    @staticmethod
    def _distractor_pair(rng, split: str, exclude: set[tuple[str, str]]) -> tuple[str, str]:
        pairs = [
            (c, s)
            for c in COLOUR_NAMES
            for s in SHAPE_NAMES
            if (c, s) not in exclude and (split == "heldout" or not heldout_pair(c, s))
        ]
        return pairs[int(rng.integers(len(pairs)))]

    @staticmethod
    def _place(rng, taken: list[tuple[float, float, float]], radius: float, tries: int = 200):
        """A free (x, y) in the work region at least `radius` + margin from everything taken."""
        for _ in range(tries):
            x = float(rng.uniform(*REGION_X))
            y = float(rng.uniform(*REGION_Y))
            if all(math.hypot(x - tx, y - ty) > radius + tr + 0.025 for tx, ty, tr in taken):
                return x, y
        raise RuntimeError("could not place an object without overlap (layout too crowded)")

    def _distractors(self, rng, split, taken, names: set[tuple[str, str]], n: int) -> list[ObjectSpec]:
        out = []
        for _ in range(n):
            c, s = self._distractor_pair(rng, split, names)
            names.add((c, s))
            probe = ObjectSpec(s, c, 0.0, 0.0, 0.0)
            x, y = self._place(rng, taken, probe.radius)
            spec = ObjectSpec(s, c, x, y, float(rng.uniform(-math.pi, math.pi)))
            taken.append((x, y, spec.radius))
            out.append(spec)
        return out

    def _instruction(self, rng, **kw) -> tuple[str, int]:
        i = int(rng.integers(len(self.templates)))
        return self.templates[i].format(**kw), i


# Every task class, by name; each class's `name` attribute equals its key (tests/sim/test_contract.py).
# A variant that subclasses another task gets its parent's scripted expert (sim.experts.make_expert).
TASKS: Registry[type[Task]] = Registry(
    "task",
    {
        "pick": "sim.tasks:PickTask",
        "pick_colour": "sim.tasks:PickColourTask",
        "place": "sim.tasks:PlaceTask",
        "push": "sim.tasks:PushTask",
        "stack": "sim.tasks:StackTask",
        "pick_concepts": "sim.concept_tasks:PickConceptsTask",
        "pick_colour_synonyms": "sim.concept_tasks:PickColourSynonymsTask",
        "arrange": "sim.goal_tasks:ArrangeTask",
        "arrange_one": "sim.goal_tasks:ArrangeOneTask",
        "stack_goal": "sim.goal_tasks:StackGoalTask",
    },
)


def list_tasks() -> list[str]:
    return TASKS.names()


def get_task(name: str) -> Task:
    """A fresh instance of the task `name` (a ValueError listing the known tasks for an unknown one)."""
    return TASKS.get(name)()


def task_seeds(task: str, split: str, n: int) -> list[int]:
    """The first `n` seeds of a split; train and held-out ranges never overlap."""
    get_task(task)
    check_split(split)
    if n < 0 or n > HELDOUT_SEED_OFFSET:
        raise ValueError(f"n: expected 0 <= n <= {HELDOUT_SEED_OFFSET}, got {n}")
    base = 0 if split == "train" else HELDOUT_SEED_OFFSET
    return [base + i for i in range(n)]


def task_rng_seed(task: str, split: str, seed: int) -> list[int]:
    """Entropy for the layout RNG: the seed, the task and the split (stable across processes)."""
    return [int(seed) & 0xFFFFFFFF, zlib.crc32(task.encode()), SPLITS.index(check_split(split))]


def swap_rng_seed(task: str, split: str, seed: int) -> list[int]:
    """Entropy for `Task.swapped`'s RNG: the layout's entropy plus a stream tag (the env's action noise
    uses tag 1), so the swap is a pure function of the seed and never shifts the layout's draws."""
    return [*task_rng_seed(task, split, seed), 2]


def swapped_layout(task: str, split: str, seed: int) -> tuple[Layout, Layout | None]:
    """The seed's layout and its swapped version (None: no alternative in this scene), exactly as
    `TabletopEnv.reset(seed=seed, options={"swap_instruction": True})` builds them."""
    t = get_task(task)
    layout = t.sample(np.random.default_rng(task_rng_seed(task, split, seed)), check_split(split))
    return layout, t.swapped(layout, np.random.default_rng(swap_rng_seed(task, split, seed)))


def _choose(rng: np.random.Generator, options: list[int]) -> int | None:
    """One of `options` drawn by `rng`, None when there are none."""
    return options[int(rng.integers(len(options)))] if options else None


def _unique(names: list[str], i: int) -> bool:
    return names.count(names[i]) == 1


def _segment_distance(
    point: tuple[float, float], start: tuple[float, float], end: tuple[float, float]
) -> float:
    """Distance (m) from `point` to the segment start-end in the table plane."""
    p, a, b = (np.asarray(v, dtype=np.float64) for v in (point, start, end))
    ab = b - a
    t = float(np.clip((p - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(a + t * ab - p))


class PickTask(Task):
    name = "pick"
    horizon = 50
    templates = (
        "lift the {o}",
        "pick up the {o}",
        "grab the {o} and raise it",
        "raise the {o} off the table",
    )

    def sample(self, rng, split):
        c, s = self._pair(rng, split, set())
        x, y = self._place(rng, [], 0.03)
        target = ObjectSpec(s, c, x, y, float(rng.uniform(-math.pi, math.pi)))
        taken = [(x, y, target.radius)]
        objs = [target] + self._distractors(
            rng, split, taken, self._not_distractors(c, s), int(rng.integers(1, 4))
        )
        text, t = self._instruction(rng, o=target.name)
        return Layout(tuple(objs), (), 0, "lift", -1, text, t)

    @staticmethod
    def _not_distractors(colour: str, shape: str) -> set[tuple[str, str]]:
        """Colour-shape pairs no distractor may have: the target's own."""
        return {(colour, shape)}

    @staticmethod
    def _swap_candidates(layout: Layout) -> list[int]:
        """Objects that may become the target: every other one whose colour-shape name is unique."""
        names = [o.name for o in layout.objects]
        return [i for i in range(len(names)) if i != layout.target and _unique(names, i)]

    def swapped(self, layout, rng):
        """Another object of the scene (`_swap_candidates`) becomes the object to lift."""
        new = _choose(rng, self._swap_candidates(layout))
        if new is None:
            return None
        text = self.templates[layout.template].format(o=layout.objects[new].name)
        return dataclasses.replace(layout, target=new, instruction=text)

    def success(self, snap):
        spec = snap.layout.objects[snap.layout.target]
        bottom = snap.positions[snap.layout.target, 2] - spec.size[2] / 2
        return bool(bottom > LIFT_HEIGHT)


class PickColourTask(PickTask):
    """`pick` whose 1-3 distractors never share the target's colour, so the colour word alone grounds the
    target (`pick` may show a purple cylinder beside the purple cube: at 64 px only shape tells them apart).
    The default task of `vla demo`; held-out seeds still use colour-shape pairs never seen in train."""

    name = "pick_colour"

    @staticmethod
    def _not_distractors(colour: str, shape: str) -> set[tuple[str, str]]:
        return {(colour, k) for k in SHAPE_NAMES}

    @staticmethod
    def _swap_candidates(layout: Layout) -> list[int]:
        """Other objects whose colour no other object shares (so, as in `sample`, the colour word alone
        grounds the new target; two distractors may share a colour, and neither is then a candidate)."""
        colours = [o.colour for o in layout.objects]
        return [i for i in range(len(colours)) if i != layout.target and _unique(colours, i)]


def _resting(snap: Snapshot, i: int, surface: float) -> bool:
    spec = snap.layout.objects[i]
    return bool(snap.positions[i, 2] - spec.size[2] / 2 < surface + 0.015 and not snap.touching[i])


class PlaceTask(Task):
    name = "place"
    horizon = 70
    templates = (
        "put the {o} {prep} the {f}",
        "place the {o} {prep} the {f}",
        "move the {o} {prep} the {f}",
        "set the {o} down {prep} the {f}",
    )

    def sample(self, rng, split):
        taken: list[tuple[float, float, float]] = []
        fixtures = []
        for kind, colour in (("tray", "grey"), ("plate", "white")):
            probe = FixtureSpec(kind, colour, 0.0, 0.0)
            fx, fy = self._place(rng, taken, probe.radius)
            fixtures.append(FixtureSpec(kind, colour, fx, fy))
            taken.append((fx, fy, probe.radius))
        c, s = self._pair(rng, split, set())
        x, y = self._place(rng, taken, 0.04)
        target = ObjectSpec(s, c, x, y, float(rng.uniform(-math.pi, math.pi)))
        taken.append((x, y, target.radius))
        objs = [target] + self._distractors(rng, split, taken, {(c, s)}, int(rng.integers(0, 2)))
        goal = int(rng.integers(2))
        prep = "in" if fixtures[goal].kind == "tray" else "on"
        text, t = self._instruction(rng, o=target.name, prep=prep, f=fixtures[goal].kind)
        return Layout(tuple(objs), tuple(fixtures), 0, "fixture", goal, text, t)

    def swapped(self, layout, rng):
        """The other fixture (tray <-> plate) becomes the goal, with its preposition ("in"/"on")."""
        kinds = [f.kind for f in layout.fixtures]
        new = _choose(rng, [j for j in range(len(kinds)) if j != layout.goal_index and _unique(kinds, j)])
        if new is None:
            return None
        prep = "in" if kinds[new] == "tray" else "on"
        text = self.templates[layout.template].format(
            o=layout.objects[layout.target].name, prep=prep, f=kinds[new]
        )
        return dataclasses.replace(layout, goal_index=new, instruction=text)

    def success(self, snap):
        lay = snap.layout
        f = lay.fixtures[lay.goal_index]
        centre = snap.fixture_positions[lay.goal_index, :2]
        inside = fixture_contains(f.kind, centre, snap.positions[lay.target, :2])
        return inside and _resting(snap, lay.target, fixture_top(f.kind))


class PushTask(Task):
    name = "push"
    horizon = 70
    templates = (
        "push the {o} to the {m}",
        "slide the {o} onto the {m}",
        "shove the {o} over to the {m}",
        "nudge the {o} until it covers the {m}",
    )
    goal_tolerance = 0.035

    def sample(self, rng, split):
        c, s = self._pair(rng, split, set())
        for _ in range(200):
            x, y = float(rng.uniform(0.42, 0.58)), float(rng.uniform(-0.14, 0.14))
            ang = float(rng.uniform(-math.pi, math.pi))
            dist = float(rng.uniform(0.10, 0.15))
            gx, gy = x + dist * math.cos(ang), y + dist * math.sin(ang)
            px, py = x - 0.08 * math.cos(ang), y - 0.08 * math.sin(ang)  # where the pusher starts
            if REGION_X[0] - 0.05 <= gx <= REGION_X[1] + 0.05 and abs(gy) <= 0.24 and 0.3 < px < 0.75:
                break
        else:
            raise RuntimeError("could not sample a push goal inside the work region")
        target = ObjectSpec(s, c, x, y, float(rng.uniform(-math.pi, math.pi)))
        mc = [k for k in COLOUR_NAMES if k != c]
        goal_c, other_c = (mc[int(i)] for i in rng.choice(len(mc), size=2, replace=False))
        # Keep the whole push corridor (pusher start -> goal) free of other objects and the other marker.
        corridor = [(px + t * (gx - px), py + t * (gy - py), 0.06) for t in (0.0, 0.5, 1.0)]
        taken = [*corridor, (x, y, target.radius), (gx, gy, 0.05)]
        ox, oy = self._place(rng, taken, 0.03)
        fixtures = (FixtureSpec("marker", goal_c, gx, gy), FixtureSpec("marker", other_c, ox, oy))
        taken.append((ox, oy, 0.03))
        objs = [target] + self._distractors(rng, split, taken, {(c, s)}, int(rng.integers(0, 3)))
        text, t = self._instruction(rng, o=target.name, m=fixtures[0].name)
        return Layout(tuple(objs), fixtures, 0, "fixture", 0, text, t)

    def swapped(self, layout, rng):
        """The other marker (fixtures[1]; fixtures[0] is `sample`'s goal) becomes the goal marker. None
        where the straight push to it passes within `2 * goal_tolerance` of the old marker (following the
        new instruction would slide the object over the old goal: held-out seeds 1000002, 1000006, ...).
        Only `sample`'s push corridor is kept free, so the new push may pass other objects."""
        names = [f.name for f in layout.fixtures]
        old, obj = layout.fixtures[layout.goal_index], layout.objects[layout.target]
        options = [
            j
            for j in range(len(names))
            if j != layout.goal_index
            and _unique(names, j)
            and _segment_distance(
                (old.x, old.y), (obj.x, obj.y), (layout.fixtures[j].x, layout.fixtures[j].y)
            )
            >= 2 * self.goal_tolerance
        ]
        new = _choose(rng, options)
        if new is None:
            return None
        text = self.templates[layout.template].format(o=layout.objects[layout.target].name, m=names[new])
        return dataclasses.replace(layout, goal_index=new, instruction=text)

    def success(self, snap):
        lay, t = snap.layout, snap.layout.target
        d = np.linalg.norm(snap.positions[t, :2] - snap.fixture_positions[lay.goal_index, :2])
        on_table = snap.positions[t, 2] - lay.objects[t].size[2] / 2 < 0.01
        return bool(d < self.goal_tolerance and on_table)


class StackTask(Task):
    name = "stack"
    horizon = 90
    templates = (
        "stack the {a} cube on the {b} cube",
        "put the {a} cube on top of the {b} cube",
        "place the {a} cube onto the {b} cube",
        "set the {a} cube on the {b} cube",
    )

    def sample(self, rng, split):
        want = split == "heldout"
        pairs = [
            (a, b) for a in COLOUR_NAMES for b in COLOUR_NAMES if a != b and heldout_stack_pair(a, b) == want
        ]
        a, b = pairs[int(rng.integers(len(pairs)))]
        taken: list[tuple[float, float, float]] = []
        objs = []
        for colour in (a, b):
            probe = ObjectSpec("cube", colour, 0.0, 0.0, 0.0)
            x, y = self._place(rng, taken, probe.radius + 0.02)
            objs.append(ObjectSpec("cube", colour, x, y, float(rng.uniform(-math.pi, math.pi))))
            taken.append((x, y, probe.radius + 0.02))
        names = {(a, "cube"), (b, "cube")} | {(c, "cube") for c in COLOUR_NAMES}  # no other cubes
        objs += self._distractors(rng, split, taken, names, int(rng.integers(0, 3)))
        text, t = self._instruction(rng, a=a, b=b)
        return Layout(tuple(objs), (), 0, "object", 1, text, t)

    def swapped(self, layout, rng):
        """Top and bottom trade places: "stack the b cube on the a cube" (target and goal index swap).
        The held-out colour pairs are symmetric (`heldout_stack_pair`), so the swap stays in its split."""
        top, bottom = layout.goal_index, layout.target
        a, b = layout.objects[top].colour, layout.objects[bottom].colour
        text = self.templates[layout.template].format(a=a, b=b)
        return dataclasses.replace(layout, target=top, goal_index=bottom, instruction=text)

    def success(self, snap):
        t, g = snap.layout.target, snap.layout.goal_index  # the top cube and the one it goes on
        top, bottom = snap.positions[t], snap.positions[g]
        st, sb = snap.layout.objects[t].size, snap.layout.objects[g].size
        aligned = np.linalg.norm(top[:2] - bottom[:2]) < 0.025
        height_ok = abs(top[2] - bottom[2] - (st[2] + sb[2]) / 2) < 0.012
        bottom_down = bottom[2] - sb[2] / 2 < 0.01
        return bool(aligned and height_ok and bottom_down and not snap.touching[t])

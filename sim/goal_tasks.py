"""Goal-specified table-top tasks: the target arrangement is given by a goal point cloud, not by words.

`arrange` ("arrange the objects as the goal shows"): 2-3 objects each have a goal position on the table
(orientation kept), away from every initial position; 0-1 distractors stay where they are. `arrange_one`
is the easy variant: exactly one object moves and one stays. `stack_goal`
("stack the cubes as the goal shows"): 2-3 cubes of different colours must end as a tower in an order that
only the goal shows, on the spot of the bottom cube; 0-2 non-cube distractors stay. The instruction never
names positions or the order, so two seeds with the same instruction have different goals: a policy must
read the goal cloud (`goal/points`, `goal/colors`, rendered by the env at reset from `Layout.goal_poses`).
Splits as for the other tasks: held-out seeds hold colour-shape pairs (`arrange`) or directly stacked
colour pairs (`stack_goal`) that never occur in train. Success compares the world with the goal poses.

    layout = get_task("arrange").sample(np.random.default_rng(task_rng_seed("arrange", "train", 0)), "train")
    layout.goal_poses  # ((x, y, z, yaw), ...) per object
"""

from __future__ import annotations

import math

import numpy as np

from sim.scene import COLOUR_NAMES, ObjectSpec
from sim.tasks import Layout, Snapshot, Task, get_task, heldout_stack_pair, list_tasks

ARRANGE_TOLERANCE = 0.03  # metres: an object counts as at its goal when its centre is this close (xy)
STACK_BASE_TOLERANCE = 0.04  # metres: the bottom cube may drift this far from its goal spot
NUMBER_WORDS = {2: "two", 3: "three"}


def _resting_on_table(snap: Snapshot, i: int) -> bool:
    spec = snap.layout.objects[i]
    return bool(snap.positions[i, 2] - spec.size[2] / 2 < 0.015 and not snap.touching[i])


def _retry(sample, rng: np.random.Generator, tries: int = 50):
    """Call `sample(rng)` until it lays out without overlap (the RNG state advances: still deterministic)."""
    for _ in range(tries):
        try:
            return sample(rng)
        except RuntimeError:
            continue
    raise RuntimeError(f"could not sample a layout in {tries} tries (work region too crowded)")


class ArrangeTask(Task):
    name = "arrange"
    horizon = 180
    has_goal_cloud = True
    move_range = (2, 3)  # objects with a goal away from their start (inclusive range)
    distractor_range = (0, 1)  # objects that stay where they are
    templates = (
        "arrange the objects as the goal shows",
        "put the objects where the goal shows them",
        "move the objects to their places in the goal",
        "make the table look like the goal",
    )

    def sample(self, rng, split):
        return _retry(lambda r: self._sample_once(r, split), rng)

    def _sample_once(self, rng: np.random.Generator, split: str) -> Layout:
        n_move = int(rng.integers(self.move_range[0], self.move_range[1] + 1))
        c, s = self._pair(rng, split, set())  # the held-out split always holds one held-out pair
        names = {(c, s)}
        kinds = [(c, s)]
        for _ in range(n_move - 1):
            kinds.append(self._distractor_pair(rng, split, names))
            names.add(kinds[-1])
        taken: list[tuple[float, float, float]] = []
        objs: list[ObjectSpec] = []
        for colour, shape in kinds:
            probe = ObjectSpec(shape, colour, 0.0, 0.0, 0.0)
            x, y = self._place(rng, taken, probe.radius)
            objs.append(ObjectSpec(shape, colour, x, y, float(rng.uniform(-math.pi, math.pi))))
            taken.append((x, y, probe.radius))
        n_stay = int(rng.integers(self.distractor_range[0], self.distractor_range[1] + 1))
        objs += self._distractors(rng, split, taken, names, n_stay)
        goals = []
        for i, o in enumerate(objs):
            if i < n_move:  # a free spot: away from every object's start and every other goal
                gx, gy = self._place(rng, taken, o.radius)
                taken.append((gx, gy, o.radius))
            else:
                gx, gy = o.x, o.y
            goals.append((gx, gy, o.size[2] / 2, o.yaw))
        text, t = self._instruction(rng)
        return Layout(tuple(objs), (), 0, "pose", -1, text, t, tuple(goals))

    def success(self, snap):
        goals = np.asarray(snap.layout.goal_poses, dtype=np.float64)  # [K,4]
        for i in range(len(goals)):
            if np.linalg.norm(snap.positions[i, :2] - goals[i, :2]) > ARRANGE_TOLERANCE:
                return False
            if not _resting_on_table(snap, i):
                return False
        return True


class ArrangeOneTask(ArrangeTask):
    """The easiest goal task: exactly one object to move and one that stays; which one moves, and where
    to, only the goal cloud shows (the benchmark's task for tiny CPU-trained models)."""

    name = "arrange_one"
    horizon = 100
    move_range = (1, 1)
    distractor_range = (1, 1)
    templates = (
        "arrange the objects as the goal shows",
        "put the objects where the goal shows them",
        "move the object to its place in the goal",
        "make the table look like the goal",
    )


def stack_order(layout: Layout) -> list[int]:
    """Object indices of the goal tower, bottom first (objects with a goal above the table, by height)."""
    cubes = [i for i, o in enumerate(layout.objects) if o.shape == "cube"]
    return sorted(cubes, key=lambda i: layout.goal_poses[i][2])


class StackGoalTask(Task):
    name = "stack_goal"
    horizon = 180
    has_goal_cloud = True
    templates = (
        "stack the {n} cubes as the goal shows",
        "build the tower of {n} cubes shown in the goal",
        "stack the {n} cubes in the order of the goal",
        "pile up the {n} cubes like the goal",
    )

    def sample(self, rng, split):
        return _retry(lambda r: self._sample_once(r, split), rng)

    @staticmethod
    def _order(rng: np.random.Generator, split: str, n: int) -> list[str]:
        """n distinct colours, bottom first; train never stacks a held-out (top, bottom) pair directly,
        the held-out split always does at least once."""
        for _ in range(200):
            order = [COLOUR_NAMES[int(i)] for i in rng.choice(len(COLOUR_NAMES), size=n, replace=False)]
            held = any(heldout_stack_pair(order[k + 1], order[k]) for k in range(n - 1))
            if held == (split == "heldout"):
                return order
        raise RuntimeError("could not sample a cube order for the split")

    def _sample_once(self, rng: np.random.Generator, split: str) -> Layout:
        n = int(rng.integers(2, 4))
        order = self._order(rng, split, n)
        listed = [order[int(i)] for i in rng.permutation(n)]  # object order does not reveal the tower
        taken: list[tuple[float, float, float]] = []
        objs = []
        for colour in listed:
            probe = ObjectSpec("cube", colour, 0.0, 0.0, 0.0)
            x, y = self._place(rng, taken, probe.radius + 0.02)
            objs.append(ObjectSpec("cube", colour, x, y, float(rng.uniform(-math.pi, math.pi))))
            taken.append((x, y, probe.radius + 0.02))
        names = {(c, "cube") for c in COLOUR_NAMES}  # no other cubes
        objs += self._distractors(rng, split, taken, names, int(rng.integers(0, 3)))
        base = objs[listed.index(order[0])]
        goals = []
        for o in objs:
            if o.shape == "cube":
                level = order.index(o.colour)
                h = o.size[2]
                goals.append((base.x, base.y, h / 2 + level * h, o.yaw))
            else:
                goals.append((o.x, o.y, o.size[2] / 2, o.yaw))
        text, t = self._instruction(rng, n=NUMBER_WORDS[n])
        return Layout(tuple(objs), (), 0, "pose", -1, text, t, tuple(goals))

    def success(self, snap):
        lay = snap.layout
        order = stack_order(lay)
        b = order[0]
        bottom_h = lay.objects[b].size[2]
        if snap.positions[b, 2] - bottom_h / 2 > 0.01:
            return False
        if np.linalg.norm(snap.positions[b, :2] - np.asarray(lay.goal_poses[b][:2])) > STACK_BASE_TOLERANCE:
            return False
        for lower, upper in zip(order[:-1], order[1:]):
            lo, up = snap.positions[lower], snap.positions[upper]
            want = (lay.objects[lower].size[2] + lay.objects[upper].size[2]) / 2
            if np.linalg.norm(up[:2] - lo[:2]) > 0.025 or abs(up[2] - lo[2] - want) > 0.012:
                return False
        return not snap.touching[order[-1]]


def goal_task_names() -> list[str]:
    """The registered tasks whose goal is a point cloud (`Task.has_goal_cloud`)."""
    return [t for t in list_tasks() if get_task(t).has_goal_cloud]

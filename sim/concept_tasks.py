"""Held-out-concept tasks: `pick` whose instructions use words only the scene-VQA data teaches.

RT-2's transfer claim is measured on instructions whose concepts the robot demonstrations never contain.
`pick_concepts` lays out the scene exactly like `pick` (same objects, same target, same success check:
the target lifted), but names the target with one held-out concept of `sim.scene_vqa`:

| kind | example | meaning |
|---|---|---|
| colour synonym | "pick up the crimson cube" | crimson -> red (HELDOUT_COLOURS) |
| object word | "lift the red box" | box -> cube, brick -> block, can -> cylinder (HELDOUT_NOUNS) |
| relation | "pick up the object left of the blue block", "lift the rightmost object" | image left/right |

Left/right is the pixel column of an object's centre in the default static camera (as in the scene-VQA
relation questions), and a relation is only used when it picks out the target alone with a margin of
`MIN_PIXEL_GAP` pixels at 64 px (no object ambiguously beside the reference); otherwise the instruction uses
one of the word concepts. `instruction_concepts(text)` lists the held-out concepts an instruction uses,
tagged as in the scene-VQA records ("colour:crimson", "noun:box", "relation:left of").

    vla eval checkpoint=outputs/train/run tasks=[pick_concepts] split=train episodes=20

`pick_colour_synonyms` does the same for `pick_colour` (the main job's task), always with a colour
synonym and the shape's held-out word where it has one.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from sim.camera import DEFAULT_CAMERAS, intrinsics, look_at_extrinsics
from sim.scene import ObjectSpec
from sim.scene_vqa import HELDOUT_COLOURS, HELDOUT_NOUNS, MIN_PIXEL_GAP, project_u
from sim.tasks import Layout, PickColourTask, PickTask

CONCEPT_KINDS = ("colour_synonym", "object_word", "relation")
REFERENCE_WIDTH = 64  # pixel columns are computed at 64 px (the margin scales with the image anyway)


def static_columns(objects: tuple[ObjectSpec, ...], width: int = REFERENCE_WIDTH) -> np.ndarray:
    """Pixel column [K] of each object's centre (resting on the table) in the default static camera."""
    cam = DEFAULT_CAMERAS["static"]
    K = intrinsics(cam.fov_deg, width, width)  # [3,3]
    world_T_cam = look_at_extrinsics(cam.eye, cam.target, cam.up)  # [4,4]
    return np.array([project_u((o.x, o.y, o.size[2] / 2), K, world_T_cam) for o in objects])


def relation_phrases(objects: tuple[ObjectSpec, ...], target: int, gap: float = MIN_PIXEL_GAP) -> list[str]:
    """Every relational description that picks out `target` alone: "object left of the <ref>" (the target
    is the only object on that side of the reference, none is within `gap` pixels of it) and
    "leftmost/rightmost object" (the target is extreme by at least `gap`)."""
    u = static_columns(objects)  # [K]
    out = []
    for r, ref in enumerate(objects):
        if r == target:
            continue
        others = [k for k in range(len(objects)) if k != r]
        if any(abs(u[k] - u[r]) < gap for k in others):
            continue  # an object is ambiguously beside the reference
        for side, sign in (("left", -1.0), ("right", 1.0)):
            on_side = [k for k in others if sign * (u[k] - u[r]) > 0]
            if on_side == [target]:
                out.append(f"object {side} of the {ref.name}")
    order = np.argsort(u)
    if len(objects) >= 2:
        if order[0] == target and u[order[1]] - u[order[0]] >= gap:
            out.append("leftmost object")
        if order[-1] == target and u[order[-1]] - u[order[-2]] >= gap:
            out.append("rightmost object")
    return out


def instruction_concepts(text: str) -> list[str]:
    """Held-out concepts used by an instruction, as scene-VQA concept tags (sorted)."""
    words = set(re.findall(r"[a-z]+", text.lower()))
    tags = {f"colour:{s}" for syns in HELDOUT_COLOURS.values() for s in syns if s in words}
    tags |= {f"noun:{n}" for n in HELDOUT_NOUNS.values() if n in words}
    for rel in ("left of", "right of"):
        if re.search(rf"\b{rel}\b", text.lower()):
            tags.add(f"relation:{rel}")
    tags |= {f"relation:{w}" for w in ("leftmost", "rightmost") if w in words}
    return sorted(tags)


class PickConceptsTask(PickTask):
    """`pick` with one held-out concept in the instruction (see the module docstring)."""

    name = "pick_concepts"

    def sample(self, rng, split):
        layout = super().sample(rng, split)
        target = layout.objects[layout.target]
        kinds = list(CONCEPT_KINDS)
        kind = kinds[int(rng.integers(len(kinds)))]
        phrases = relation_phrases(layout.objects, layout.target) if kind == "relation" else []
        if kind == "relation" and not phrases:
            kind = kinds[int(rng.integers(2))]  # no unambiguous relation in this layout: a word concept
        if kind == "relation":
            phrase = phrases[int(rng.integers(len(phrases)))]
        elif kind == "colour_synonym":
            syns = HELDOUT_COLOURS[target.colour]
            phrase = f"{syns[int(rng.integers(len(syns)))]} {target.shape}"
        else:
            phrase = f"{target.colour} {HELDOUT_NOUNS[target.shape]}"
        text, t = self._instruction(rng, o=phrase)
        return dataclasses.replace(layout, instruction=text, template=t)

    def swapped(self, layout, rng):
        """None: a swapped instruction would name the new target in plain words, not by a held-out concept,
        so it would measure `pick`, not this task (run the language check on `pick` instead)."""
        return None


class PickColourSynonymsTask(PickColourTask):
    """`pick_colour` named in words its demonstrations never use: a colour synonym always ("crimson" for
    red, HELDOUT_COLOURS) and the held-out word for the shape where there is one ("box" for cube,
    HELDOUT_NOUNS). Layouts, distractors and success are pick_colour's, so the colour word alone grounds
    the target; held-out seeds also keep pick_colour's unseen colour-shape pairs. It measures whether a
    policy trained on `pick_colour` understands instructions in new words (issue 18, docs/backbones.md):

        vla eval checkpoint=outputs/demo/train tasks=[pick_colour_synonyms] split=heldout episodes=50
    """

    name = "pick_colour_synonyms"

    def sample(self, rng, split):
        layout = super().sample(rng, split)
        target = layout.objects[layout.target]
        syns = HELDOUT_COLOURS[target.colour]
        phrase = f"{syns[int(rng.integers(len(syns)))]} {HELDOUT_NOUNS.get(target.shape, target.shape)}"
        text = self.templates[layout.template].format(o=phrase)
        return dataclasses.replace(layout, instruction=text)

    def swapped(self, layout, rng):
        """None, as for pick_concepts: the swap would name the new target in the training words."""
        return None


def describe(layout: Layout) -> dict[str, object]:
    """A layout's instruction, its held-out concepts and the target's name (for reports and tests)."""
    return {
        "instruction": layout.instruction,
        "concepts": instruction_concepts(layout.instruction),
        "target": layout.objects[layout.target].name,
    }

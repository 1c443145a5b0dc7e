"""Scene building blocks: object catalogue (shapes, colours, sizes), fixtures, and body creation.

Everything a task puts on the table is described by plain frozen dataclasses (`ObjectSpec`,
`FixtureSpec`) that a task samples from a seeded RNG; `build_object` / `build_fixture` / `build_table`
turn them into PyBullet bodies. Objects are procedural primitives (cubes, blocks, cylinders) with tuned
friction and mass so the Panda grasps them reliably; fixtures are a tray (base + four walls), a plate
and flat visual-only markers. The table top is the plane z = 0 of the world (= robot base) frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pybullet as p

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.12),
    "green": (0.15, 0.7, 0.2),
    "blue": (0.12, 0.3, 0.9),
    "yellow": (0.95, 0.85, 0.1),
    "purple": (0.6, 0.2, 0.8),
    "orange": (1.0, 0.5, 0.05),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
# Fixture-only colours (never an object colour, so they never clash with instructions about objects).
FIXTURE_COLOURS: dict[str, tuple[float, float, float]] = {
    "grey": (0.45, 0.45, 0.48),
    "white": (0.92, 0.92, 0.9),
}
# Every named colour an object or fixture can have, in a fixed order: the env's `colour_masks` number a
# pixel k + 1 where PALETTE[k] is drawn (0: the table, the robot, the background).
PALETTE: tuple[str, ...] = COLOUR_NAMES + tuple(FIXTURE_COLOURS)


def palette_rgb() -> list[list]:
    """[[name, [r, g, b]], ...] in PALETTE order, the base colours in 0-255 (a store feature's info)."""
    every = {**COLOURS, **FIXTURE_COLOURS}
    return [[name, [round(255 * v, 2) for v in every[name]]] for name in PALETTE]

# Full extents (x, y, z) in metres. Blocks are grasped across their narrow (y) side.
SHAPES: dict[str, tuple[float, float, float]] = {
    "cube": (0.04, 0.04, 0.04),
    "block": (0.065, 0.03, 0.035),
    "cylinder": (0.045, 0.045, 0.042),
}
SHAPE_NAMES: tuple[str, ...] = tuple(SHAPES)
# Yaw symmetry of each shape (a rotation by this leaves the shape unchanged); used by experts.
YAW_SYMMETRY: dict[str, float] = {"cube": math.pi / 2, "block": math.pi, "cylinder": 2 * math.pi}
OBJECT_MASS = 0.08

TABLE_HALF = (0.55, 0.6, 0.02)  # half extents; top surface at z = 0
TABLE_CENTRE = (0.45, 0.0, -TABLE_HALF[2])
TABLE_COLOUR = (0.62, 0.5, 0.38, 1.0)

TRAY_HALF = 0.075  # half side of the tray's outer footprint
TRAY_WALL = (0.006, 0.03)  # wall half-thickness, wall height
PLATE_RADIUS = 0.07
MARKER_RADIUS = 0.03
FIXTURE_RADIUS = {"tray": TRAY_HALF * math.sqrt(2), "plate": PLATE_RADIUS, "marker": MARKER_RADIUS}


@dataclass(frozen=True)
class ObjectSpec:
    """A movable object: shape, colour name, position of its base centre on the table and yaw."""

    shape: str
    colour: str
    x: float
    y: float
    yaw: float

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def size(self) -> tuple[float, float, float]:
        return SHAPES[self.shape]

    @property
    def radius(self) -> float:
        sx, sy, _ = self.size
        return 0.5 * math.hypot(sx, sy)


@dataclass(frozen=True)
class FixtureSpec:
    """A static fixture: 'tray', 'plate' or 'marker' (flat, no collision), with a colour name."""

    kind: str
    colour: str
    x: float
    y: float

    @property
    def name(self) -> str:
        return f"{self.colour} {self.kind}"

    @property
    def radius(self) -> float:
        return FIXTURE_RADIUS[self.kind]


def rgba(colour: str) -> list[float]:
    table = {**COLOURS, **FIXTURE_COLOURS}
    if colour not in table:
        raise ValueError(f"unknown colour {colour!r}; expected one of {list(table)}")
    return [*table[colour], 1.0]


def build_table(client: int) -> int:
    col = p.createCollisionShape(p.GEOM_BOX, halfExtents=TABLE_HALF, physicsClientId=client)
    vis = p.createVisualShape(
        p.GEOM_BOX, halfExtents=TABLE_HALF, rgbaColor=TABLE_COLOUR, physicsClientId=client
    )
    uid = p.createMultiBody(0, col, vis, basePosition=TABLE_CENTRE, physicsClientId=client)
    p.changeDynamics(uid, -1, lateralFriction=0.4, physicsClientId=client)
    return uid


class ShapeCache:
    """Collision/visual shape ids of one PyBullet client, keyed by what they look like.

    PyBullet never frees a shape when its body is removed, so an env that rebuilds its objects every
    episode would grow without bound; bodies share cached shapes instead. Valid until the client's
    `resetSimulation` (then make a new cache)."""

    def __init__(self, client: int):
        self.client = client
        self._shapes: dict[tuple, tuple[int, int]] = {}

    def get(self, key: tuple, make: Callable[[int], tuple[int, int]]) -> tuple[int, int]:
        if key not in self._shapes:
            self._shapes[key] = make(self.client)
        return self._shapes[key]

    def __len__(self) -> int:
        return len(self._shapes)


def build_object(client: int, spec: ObjectSpec, shapes: ShapeCache | None = None) -> int:
    """Create a dynamic body for `spec`, resting on the table. Returns its body id."""
    if spec.shape not in SHAPES:
        raise ValueError(f"unknown shape {spec.shape!r}; expected one of {list(SHAPES)}")
    shapes = ShapeCache(client) if shapes is None else shapes
    col, vis = shapes.get(("object", spec.shape, spec.colour), lambda c: _object_shapes(c, spec))
    sz = spec.size[2]
    quat = p.getQuaternionFromEuler((0.0, 0.0, spec.yaw))
    uid = p.createMultiBody(
        OBJECT_MASS,
        col,
        vis,
        basePosition=(spec.x, spec.y, sz / 2),
        baseOrientation=quat,
        physicsClientId=client,
    )
    p.changeDynamics(
        uid,
        -1,
        lateralFriction=1.2,
        spinningFriction=0.002,
        rollingFriction=0.001,
        linearDamping=0.05,
        angularDamping=0.05,
        physicsClientId=client,
    )
    return uid


def _object_shapes(client: int, spec: ObjectSpec) -> tuple[int, int]:
    sx, sy, sz = spec.size
    colour = rgba(spec.colour)
    if spec.shape == "cylinder":
        col = p.createCollisionShape(p.GEOM_CYLINDER, radius=sx / 2, height=sz, physicsClientId=client)
        vis = p.createVisualShape(
            p.GEOM_CYLINDER, radius=sx / 2, length=sz, rgbaColor=colour, physicsClientId=client
        )
    else:
        half = (sx / 2, sy / 2, sz / 2)
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=client)
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=colour, physicsClientId=client)
    return col, vis


FIXTURE_BASE_Z = {"tray": 0.0, "plate": 0.004, "marker": 0.001}


def build_fixture(client: int, spec: FixtureSpec, shapes: ShapeCache | None = None) -> int:
    """Create a static fixture body. Returns its body id."""
    if spec.kind not in FIXTURE_BASE_Z:
        raise ValueError(f"unknown fixture kind {spec.kind!r}; expected tray, plate or marker")
    shapes = ShapeCache(client) if shapes is None else shapes
    col, vis = shapes.get(("fixture", spec.kind, spec.colour), lambda c: _fixture_shapes(c, spec))
    pos = (spec.x, spec.y, FIXTURE_BASE_Z[spec.kind])
    uid = p.createMultiBody(0, col, vis, basePosition=pos, physicsClientId=client)
    if spec.kind != "marker":
        p.changeDynamics(uid, -1, lateralFriction=0.8, physicsClientId=client)
    return uid


def _fixture_shapes(client: int, spec: FixtureSpec) -> tuple[int, int]:
    colour = rgba(spec.colour)
    if spec.kind == "tray":
        t, h = TRAY_WALL
        a = TRAY_HALF
        halves = [(a, a, 0.004)] + [(t, a, h / 2)] * 2 + [(a, t, h / 2)] * 2
        offsets = [(0, 0, 0.004)]
        offsets += [(a - t, 0, h / 2), (-a + t, 0, h / 2), (0, a - t, h / 2), (0, -a + t, h / 2)]
        types = [p.GEOM_BOX] * 5
        col = p.createCollisionShapeArray(
            types, halfExtents=halves, collisionFramePositions=offsets, physicsClientId=client
        )
        vis = p.createVisualShapeArray(
            types,
            halfExtents=halves,
            visualFramePositions=offsets,
            rgbaColors=[colour] * 5,
            physicsClientId=client,
        )
    elif spec.kind == "plate":
        col = p.createCollisionShape(
            p.GEOM_CYLINDER, radius=PLATE_RADIUS, height=0.008, physicsClientId=client
        )
        vis = p.createVisualShape(
            p.GEOM_CYLINDER, radius=PLATE_RADIUS, length=0.008, rgbaColor=colour, physicsClientId=client
        )
    else:  # marker: visual only, no collision
        col = -1
        vis = p.createVisualShape(
            p.GEOM_CYLINDER, radius=MARKER_RADIUS, length=0.002, rgbaColor=colour, physicsClientId=client
        )
    return col, vis


def fixture_top(kind: str) -> float:
    """Height of the surface an object rests on inside/on the fixture."""
    return {"tray": 0.008, "plate": 0.008, "marker": 0.0}[kind]


def fixture_contains(kind: str, centre_xy: np.ndarray, point_xy: np.ndarray) -> bool:
    """Whether a point (an object's centre) lies within the fixture's footprint."""
    d = np.asarray(point_xy, dtype=np.float64) - np.asarray(centre_xy, dtype=np.float64)
    if kind == "tray":
        inner = TRAY_HALF - 2 * TRAY_WALL[0]
        return bool(np.all(np.abs(d) <= inner))
    if kind == "plate":
        return bool(np.linalg.norm(d) <= PLATE_RADIUS)
    return bool(np.linalg.norm(d) <= MARKER_RADIUS + 0.005)

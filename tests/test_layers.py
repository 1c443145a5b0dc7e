"""The floors of docs/ARCHITECTURE.md, checked: every project import, function-level ones included, goes to
the importing module's own unit or to a unit on a lower floor.

An `ast` walk over every module of the five top-level packages (the colcon package `robot_io/ros2_pkg`
is a composition root of its own and may import the commands). Imports under `if TYPE_CHECKING:` are
type hints and obey the floors too. A project import inside a function is allowed only where it is
listed in `DEFERRED` with its reason (a heavy optional dependency behind it); everything else is imported
at module level, so an import against the floors cannot hide in a function body.

    python -m pytest tests/test_layers.py
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vla", "sim", "policies", "action_tokenizers", "robot_io")

# Bottom to top. A unit is a package or module prefix; a module belongs to the longest unit prefixing it.
FLOORS: list[tuple[str, ...]] = [
    ("vla.core", "vla"),  # `vla` itself: the package docstring and __version__ only
    ("sim", "action_tokenizers", "vla.backbones"),
    ("vla.pointcloud",),
    ("vla.data", "vla.processor"),
    ("vla.models",),
    ("vla.training", "vla.eval"),
    ("policies",),
    ("robot_io",),
    ("vla.commands", "vla.cli"),
]

# (importing module, imported module) -> why it waits for the function that needs it.
DEFERRED: dict[tuple[str, str], str] = {
    ("vla.cli", "vla.core.config"): "hydra loads only when a command runs, so `vla --help` stays instant",
    ("vla.backbones.vision", "vla.backbones.efficientnet"): "a cycle (the EfficientNet encoder subclasses "
    "VisionEncoder); the conv encoder's optional frozen trunk loads efficientnet_lite_pytorch only when set",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def unit_of(module: str) -> tuple[str, int]:
    best = ("", -1)
    for floor, units in enumerate(FLOORS):
        for unit in units:
            if (module == unit or module.startswith(unit + ".")) and len(unit) > len(best[0]):
                best = (unit, floor)
    if best[1] < 0:
        raise AssertionError(f"{module}: in no floor of tests/test_layers.py; add its unit to FLOORS")
    return best


def project_modules() -> list[Path]:
    out = []
    for pkg in PACKAGES:
        out += [p for p in (ROOT / pkg).rglob("*.py") if "ros2_pkg" not in p.parts]
    return sorted(out)


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported project module, line, inside a function) for every import in the file."""
    module = module_name(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            in_function |= {id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                names = [".".join(base + ([node.module] if node.module else []))]
            else:
                names = [node.module or ""]
            # `from vla.core import types` names the module vla.core.types
            names = [f"{names[0]}.{a.name}" for a in node.names] if node.names[0].name != "*" else names
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                found.append((name, node.lineno, id(node) in in_function))
    return found


def target_unit(name: str) -> tuple[str, int]:
    """The unit of an imported name, which may be `pkg.module.attr`: drop trailing parts until known."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        path = ROOT.joinpath(*parts)
        if path.with_suffix(".py").exists() or (path / "__init__.py").exists():
            return unit_of(candidate)
        parts = parts[:-1]
    raise AssertionError(f"import of {name!r}: no such project module")


def violations() -> tuple[list[str], list[str]]:
    against, deferred = [], []
    for path in project_modules():
        module = module_name(path)
        unit, floor = unit_of(module)
        rel = path.relative_to(ROOT)
        for name, line, in_func in imports(path):
            t_unit, t_floor = target_unit(name)
            if t_unit != unit and t_floor >= floor:
                against.append(f"{rel}:{line}: {module} (floor {floor}, {unit}) -> {name} (floor {t_floor})")
            if in_func and not any(module == m and name.startswith(t) for m, t in DEFERRED):
                deferred.append(f"{rel}:{line}: {module} -> {name} inside a function")
    return against, deferred


def test_every_module_has_a_floor():
    for path in project_modules():
        unit_of(module_name(path))


def test_imports_respect_the_floors():
    against, _ = violations()
    assert not against, "imports against the floors (docs/ARCHITECTURE.md):\n" + "\n".join(against)


def test_function_level_project_imports_are_listed():
    _, deferred = violations()
    assert not deferred, (
        "project imports inside functions that DEFERRED does not list (import at module level, or list "
        "the heavy dependency that makes waiting worth it):\n" + "\n".join(deferred)
    )


def test_deferred_entries_are_still_needed():
    seen = set()
    for path in project_modules():
        module = module_name(path)
        for name, _, in_func in imports(path):
            if in_func:
                seen |= {(m, t) for m, t in DEFERRED if m == module and name.startswith(t)}
    assert set(DEFERRED) <= seen, f"DEFERRED lists imports that are gone: {sorted(set(DEFERRED) - seen)}"


def test_the_checker_catches_an_upward_import(tmp_path):
    """The walk sees a function-level import and resolves relative imports (a checker that cannot fail
    would pass everything)."""
    src = "def f():\n    from vla.models import vla\n    from ..processor import Processor\n"
    path = ROOT / "vla" / "data" / "_layers_probe.py"
    path.write_text(src)
    try:
        found = imports(path)
    finally:
        path.unlink()
    assert ("vla.models.vla", 2, True) in found
    assert ("vla.processor.Processor", 3, True) in found
    unit, floor = unit_of("vla.data._layers_probe")
    t_unit, t_floor = target_unit("vla.models.vla")
    assert unit == "vla.data" and t_unit == "vla.models" and t_floor > floor

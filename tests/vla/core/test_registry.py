"""The registries: the `Registry` class (lazy "module:attr" tables, its errors) and a contract that every
registry of the project meets: each entry resolves to a callable, an unknown name lists the known ones, a
missing third-party dependency names the package to install, and naming an entry imports nothing.

    python -m pytest tests/vla/core/test_registry.py
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from vla.core.registry import MissingDependencyError, Registry, install_hint

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("vla", "sim", "policies", "action_tokenizers", "robot_io")

# Every registry of the project, as "module:attr" (test_every_registry_is_listed keeps this complete).
REGISTRIES = [
    "action_tokenizers.base:TOKENIZERS",
    "robot_io.transport:TRANSPORTS",
    "sim.tasks:TASKS",
    "vla.backbones.connectors:CONNECTORS",
    "vla.backbones.tokens:POINT_ENCODERS",
    "vla.backbones.vision:VISION_ENCODERS",
    "vla.core.policy:POLICIES",
    "vla.data.vqa.readers:READERS",
]


def _registry(spec: str) -> Registry:
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


def _entries() -> list[tuple[str, str]]:
    return [(spec, name) for spec in REGISTRIES for name in _registry(spec).names()]


def _copy(reg: Registry, **extra: str) -> Registry:
    """A registry with the same kind and entries (plus `extra`), so a test never changes the real one."""
    return Registry(reg.kind, {**{n: reg.target(n) for n in reg}, **extra})


@pytest.fixture
def fake_plugin(tmp_path, monkeypatch):
    """A module `_fake_plugin` whose import needs open3d, with open3d made unimportable."""
    (tmp_path / "_fake_plugin.py").write_text('"""Needs open3d."""\nimport open3d\n\nThing = open3d\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "open3d", None)  # `import open3d` now raises ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "_fake_plugin", raising=False)
    return "_fake_plugin:Thing"


# --- the contract, for every registry -------------------------------------------------------------------


def test_every_registry_is_listed():
    """Any module-level `X = Registry(...)` in the project is in REGISTRIES, so the contract covers it."""
    found = set()
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in tree.body:
                value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
                if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "Registry":
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                    found |= {f"{module}:{t.id}" for t in targets}
    assert found == set(REGISTRIES)


@pytest.mark.parametrize(("spec", "name"), _entries())
def test_every_entry_resolves(spec, name):
    reg = _registry(spec)
    obj = reg.get(name)
    assert callable(obj), f"{spec} {name!r} -> {obj!r} is not callable"
    target = reg.target(name)
    if isinstance(target, str):  # built-in entries are strings; a test's plugin may be an object
        module, attr = target.split(":")
        assert getattr(importlib.import_module(module), attr) is obj
    if isinstance(obj, type) and "name" in vars(obj):  # classes that carry their name carry this one
        assert obj.name == name


@pytest.mark.parametrize("spec", REGISTRIES)
def test_unknown_name_lists_the_known_names(spec):
    reg = _registry(spec)
    with pytest.raises(ValueError, match=f"unknown {reg.kind} 'no-such-entry'; expected one of") as e:
        reg.get("no-such-entry")
    assert all(repr(n) in str(e.value) for n in reg.names())


@pytest.mark.parametrize("spec", REGISTRIES)
def test_missing_dependency_names_the_package(spec, fake_plugin):
    real = _registry(spec)
    reg = _copy(real, fake=fake_plugin, gone="no_such_dist_xyz.sub:thing")
    wanted = rf"{reg.kind} 'fake' needs the package 'open3d' \(pip install open3d-cpu\)"
    with pytest.raises(MissingDependencyError, match=wanted):
        reg.get("fake")
    with pytest.raises(MissingDependencyError, match=r"'no_such_dist_xyz' \(pip install no_such_dist_xyz\)"):
        reg.get("gone")
    first = real.names()[0]
    assert reg.get(first) is real.get(first)  # the other entries still work


def test_tables_import_nothing_until_asked():
    """Naming every entry imports none of the modules on higher floors; `get` imports exactly one."""
    code = (
        "import sys\n"
        "from vla.core.policy import POLICIES\n"
        "from sim.tasks import TASKS\n"
        "import vla.backbones, action_tokenizers, sim\n"
        "lazy = ['sim.experts', 'sim.goal_tasks', 'sim.concept_tasks', 'policies.vla',\n"
        "        'policies.goal_imagination', 'vla.backbones.fused', 'action_tokenizers.fast',\n"
        "        'action_tokenizers.uniform', 'vla.models']\n"
        "names = POLICIES.names() + TASKS.names()\n"
        "assert 'expert' in POLICIES and 'arrange' in TASKS\n"
        "early = [m for m in lazy if m in sys.modules]\n"
        "assert not early, early\n"
        "POLICIES.get('expert')\n"
        "assert 'sim.experts' in sys.modules and 'policies.vla' not in sys.modules\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr


def test_ros2_policy_lookup_reports_a_missing_dependency(monkeypatch, fake_plugin):
    """`vla ros2 run policy=...` says what to install, not "unknown policy", when a dependency is missing."""
    import vla.core.policy
    from vla.commands.ros2 import build_policy

    monkeypatch.setattr(vla.core.policy, "POLICIES", _copy(vla.core.policy.POLICIES, fake=fake_plugin))
    with pytest.raises(MissingDependencyError, match="policy 'fake' needs the package 'open3d'"):
        build_policy("fake", {}, None)
    with pytest.raises(ValueError, match="unknown policy 'nope'; expected one of .*'fake'"):
        build_policy("nope", {}, None)


# --- the Registry class ----------------------------------------------------------------------------------


def test_get_imports_on_first_use_and_caches():
    reg = Registry("thing", {"join": "os.path:join", "dumps": "json:dumps"})
    assert reg.names() == ["dumps", "join"] and list(reg) == ["dumps", "join"] and len(reg) == 2
    assert "join" in reg and "split" not in reg
    import os.path

    assert reg.get("join") is os.path.join and reg.get("join") is reg.get("join")
    assert reg.target("dumps") == "json:dumps"


def test_register_objects_and_strings():
    reg = Registry("thing")

    def f():
        return 1

    reg.register("f", f)
    reg.register("f", f)  # the same target again is fine
    reg.register("g", "os.path:join")
    reg.register("g", "os.path:join")
    assert reg.get("f") is f
    with pytest.raises(ValueError, match="thing 'f' is already registered"):
        reg.register("f", lambda: 2)
    with pytest.raises(ValueError, match="thing 'g' is already registered as 'os.path:join'"):
        reg.register("g", "os.path:split")


@pytest.mark.parametrize("bad", ["os.path", ":join", "os.path:", None])
def test_a_malformed_target_is_refused_when_registered(bad):
    with pytest.raises(ValueError, match="thing 'x'"):
        Registry("thing", {"x": bad})


def test_broken_project_entries_are_import_errors_not_missing_dependencies():
    reg = Registry("thing", {"typo": "vla.core.no_such_module:X", "attr": "vla.core.registry:NoSuchAttr"})
    with pytest.raises(ImportError, match="thing 'typo' -> 'vla.core.no_such_module:X'") as e:
        reg.get("typo")
    assert not isinstance(e.value, MissingDependencyError)
    with pytest.raises(ImportError, match="vla.core.registry has no 'NoSuchAttr'") as e:
        reg.get("attr")
    assert not isinstance(e.value, MissingDependencyError)


def test_missing_dependency_error(fake_plugin):
    reg = Registry("policy", {"x": fake_plugin})
    with pytest.raises(MissingDependencyError) as e:
        reg.get("x")
    assert e.value.package == "open3d" and isinstance(e.value, ImportError)
    assert isinstance(e.value.__cause__, ModuleNotFoundError)
    assert install_hint("rclpy").startswith("a ROS 2 install")
    assert install_hint("einops") == "pip install einops"

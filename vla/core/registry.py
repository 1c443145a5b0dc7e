"""Named registries as explicit tables: name -> "package.module:attr", imported on first use.

One registry per kind of component (vision encoders, connectors, point encoders, policies, action
tokenizers, tasks, VQA readers, ROS 2 transports). Each lives in the module that owns the kind, with its whole table
written out there, so the known names never depend on which modules happen to have been imported, and
a table may name modules on higher floors (docs/ARCHITECTURE.md) as plain strings without importing
them. `get(name)` imports the entry's module the first time and caches the object. An unknown name is
a ValueError listing the known names, so a config typo fails before any model is built; an entry whose
module needs a third-party package that is missing is a `MissingDependencyError` naming what to install
(never an "unknown name"). `register(name, target)` adds a user plugin: an object, or a "module:attr"
string that is imported lazily like the built-in entries.

    VISION_ENCODERS = Registry("vision encoder", {"conv": "vla.backbones.vision:ConvEncoder"})
    cls = VISION_ENCODERS.get("conv")
    VISION_ENCODERS.register("mine", "my_pkg.encoders:MyEncoder")
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")

# Top-level packages of this project: a missing module under one of them is a bug in a table or an
# import, not a dependency to install.
PROJECT_PACKAGES = ("vla", "sim", "policies", "action_tokenizers", "robot_io")

# Import name -> how to install it, where that is not `pip install <import name>`.
INSTALL_HINTS: dict[str, str] = {
    "open3d": "pip install open3d-cpu",
    "cv2": "pip install opencv-python",
    "PIL": "pip install pillow",
    "yaml": "pip install pyyaml",
    "sklearn": "pip install scikit-learn",
    "cyclonedds": "pip install cyclonedds",
    "rclpy": "a ROS 2 install: source /opt/ros/<distro>/setup.bash",
}


class MissingDependencyError(ImportError):
    """A registry entry's module imports a third-party package that is not installed."""

    def __init__(self, message: str, package: str) -> None:
        super().__init__(message, name=package)
        self.package = package


def install_hint(package: str) -> str:
    """How to install the third-party import `package` (its top-level name)."""
    return INSTALL_HINTS.get(package, f"pip install {package}")


def _check_target(kind: str, name: str, target: object) -> None:
    if isinstance(target, str):
        module, sep, attr = target.partition(":")
        if not (module and sep and attr):
            raise ValueError(f"{kind} {name!r}: target {target!r} is not of the form 'package.module:attr'")
    elif target is None:
        raise ValueError(f"{kind} {name!r}: target is None")


class Registry(Generic[T]):
    """Name -> target table ("module:attr" string or object); strings are imported on first `get`."""

    def __init__(self, kind: str, table: Mapping[str, str | T] | None = None) -> None:
        self.kind = kind
        self._targets: dict[str, str | T] = {}
        self._loaded: dict[str, T] = {}
        for name, target in (table or {}).items():
            self.register(name, target)

    def register(self, name: str, target: str | T) -> None:
        """Add an entry (an object, or a lazily imported "module:attr" string); a taken name raises."""
        _check_target(self.kind, name, target)
        if name in self._targets and self._targets[name] is not target and self._targets[name] != target:
            raise ValueError(f"{self.kind} {name!r} is already registered as {self._targets[name]!r}")
        self._targets[name] = target

    def target(self, name: str) -> str | T:
        """The table entry of `name` as written (no import)."""
        self._check_known(name)
        return self._targets[name]

    def get(self, name: str) -> T:
        """The object registered as `name`, importing its module the first time."""
        self._check_known(name)
        if name not in self._loaded:
            target = self._targets[name]
            self._loaded[name] = self._load(name, target) if isinstance(target, str) else target
        return self._loaded[name]

    def names(self) -> list[str]:
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._targets)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"

    def _check_known(self, name: str) -> None:
        if name not in self._targets:
            raise ValueError(f"unknown {self.kind} {name!r}; expected one of {self.names()}")

    def _load(self, name: str, target: str) -> T:
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            missing = (e.name or "").split(".")[0]
            if missing and missing not in PROJECT_PACKAGES:
                raise MissingDependencyError(
                    f"{self.kind} {name!r} needs the package {missing!r} ({install_hint(missing)})", missing
                ) from e
            raise ImportError(f"{self.kind} {name!r} -> {target!r}: {e}") from e
        obj: object = module
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise ImportError(f"{self.kind} {name!r} -> {target!r}: {module_name} has no {attr!r}")
            obj = getattr(obj, part)
        return obj  # type: ignore[return-value]

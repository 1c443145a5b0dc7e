"""A small named registry filled by decorators, one per kind of component (vision encoders, connectors,
policies, action tokenizers, dataset readers, tasks).

Registering happens when the defining module is imported (no initialisation step). Looking up an unknown
name is a ValueError that lists the known names, so a config typo fails before any model is built.

    VISION_ENCODERS = Registry("vision encoder")

    @VISION_ENCODERS.register("conv")
    class ConvEncoder(nn.Module): ...

    cls = VISION_ENCODERS.get("conv")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> factory map with a decorator to fill it and clear errors for unknown names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered by {self._items[name]!r}")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ValueError(f"unknown {self.kind} {name!r}; expected one of {self.names()}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

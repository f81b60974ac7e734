"""The one registry pattern: a name -> item mapping that every kind of plug-in uses.

Attacks, architectures, training objectives, attribution methods and denoising operators are each
a :class:`Registry` of small objects with a ``name``. ``add`` (usable as a class decorator) refuses
to let a second, different item take a name; ``lookup`` says what exists when a name is unknown,
in the error type its callers expect (a ``KeyError`` for models, a ``ValueError`` for settings).
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


def _origin(item) -> tuple[str, str]:
    """Where an item was defined (a class, or the function an item wraps), to tell a re-import
    of the same definition from a clash of two definitions."""
    target = getattr(item, "make_net", None) or getattr(item, "fn", None) or item
    return getattr(target, "__module__", ""), getattr(target, "__qualname__", type(target).__qualname__)


class Registry(dict, Generic[T]):
    """``kind`` names the items in messages ("attack", "architecture", ...)."""

    def __init__(self, kind: str, items=(), error: type[Exception] = KeyError):
        super().__init__()
        self.kind, self.error = kind, error
        for item in items:
            self.add(item)

    def add(self, item: T, replace: bool = False) -> T:
        name = getattr(item, "name", "")
        if not name:
            raise ValueError(f"a {self.kind} needs a name: {item!r}")
        existing = self.get(name)
        if existing is not None and not replace and _origin(existing) != _origin(item):
            where = ".".join(_origin(existing))
            raise ValueError(f"{self.kind} name {name!r} is already registered by {where}")
        self[name] = item
        return item

    def lookup(self, name: str) -> T:
        try:
            return self[name]
        except (KeyError, TypeError):
            raise self.error(f"unknown {self.kind} {name!r}; use one of: {', '.join(self)}") from None

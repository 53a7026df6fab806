"""One registry per extension point (families, growth operators, α schedules), mergekit-style.

A duplicate name is a programming error; an unknown name is a user error that lists the choices.
An entry may carry a `reference` (the paper it implements, with its URL), printed by `--help`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

from kinherit.errors import KinheritError

T = TypeVar("T")


class UnknownName(KinheritError, ValueError):
    """Raised by `Registry.lookup`; a `ValueError` too, so pydantic validators report it against the key."""


class Registry(dict[str, T], Generic[T]):
    """Named entries of one kind; iterate or test membership like a dict. `references[name]` is
    the entry's source: "Author et al. year, title, URL"."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.references: dict[str, str] = {}

    def add(self, name: str, entry: T, reference: str | None = None) -> T:
        if not name or name in self:
            raise ValueError(f"{self.kind} {name!r} registered twice (or unnamed)")
        self[name] = entry
        if reference:
            self.references[name] = reference
        return entry

    def register(self, name: str, reference: str | None = None) -> Callable[[T], T]:
        """Decorator form of `add`."""
        return lambda entry: self.add(name, entry, reference)

    def lookup(self, name: str) -> T:
        if name not in self:
            close = difflib.get_close_matches(str(name), list(self), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UnknownName(f"unknown {self.kind} {name!r}; choose one of {', '.join(self)}{hint}")
        return self[name]

    def describe(self) -> list[str]:
        """One line per entry: `name — reference`."""
        return [f"{name} — {self.references.get(name, 'no reference')}" for name in self]

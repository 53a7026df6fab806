"""One registry per extension point (families, growth operators, α schedules), mergekit-style.

A duplicate name is a programming error; an unknown name is a user error that lists the choices (`check_name`,
the one wording, which config fields get through `known`). An entry may carry a `reference` (the paper it
implements, with its URL), printed by `--help`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection
from typing import Any, Generic, TypeVar

from pydantic import AfterValidator

from kinherit.errors import KinheritError

T = TypeVar("T")


class UnknownName(KinheritError, ValueError):
    """Raised by `Registry.lookup`; a `ValueError` too, so pydantic validators report it against the key."""


def check_name(name: str, names: Collection[str], kind: str) -> str:
    """`name` when it is one of `names`; else `UnknownName`, one line with the choices and the closest one:
    `unknown width operator 'clon'; choose one of clone, net2net, zero, aki (did you mean 'clone'?)`."""
    if name not in names:
        close = difflib.get_close_matches(str(name), list(names), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownName(f"unknown {kind} {name!r}; choose one of {', '.join(names)}{hint}")
    return name


def known(names: Registry[Any] | Collection[str], kind: str | None = None) -> AfterValidator:
    """A pydantic validator for a config field that names one of `names` (a `Registry`, named by its kind, or
    a tuple of names with `kind`); None passes (an optional field left unset). Use as
    `Annotated[str, known(REGISTRY)]`: the field's type, and so `--help-config`, stays `str`."""
    label = names.kind if isinstance(names, Registry) else str(kind)
    return AfterValidator(lambda name: name if name is None else check_name(name, names, label))


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
        return self[check_name(name, self, self.kind)]

    def describe(self) -> list[str]:
        """One line per entry: `name — reference`."""
        return [f"{name} — {self.references.get(name, 'no reference')}" for name in self]

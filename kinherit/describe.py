"""Self-description printed by the CLI: a config schema generated from its pydantic models (every
key with its type, default and attribute docstring) and registries with their references.

Nothing here is written by hand per field: a new config field or registry entry shows up as soon as
it exists, with the docstring it was declared with.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from kinherit.registry import Registry


def _type_name(tp: Any) -> str:
    """`int | None`, `list[str]`, `'a' | 'b'`: the annotation as a user reads it in YAML."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_name(a) for a in args)}]"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def _section(tp: Any) -> type[BaseModel] | None:
    """The model class of a nested section (`X` or `X | None`), else None."""
    for candidate in (tp, *typing.get_args(tp)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined:
        return "required"
    return "null" if value is None else repr(value)


def schema_rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, doc) for every field, depth first; nested sections are expanded under
    `section.key` (the YAML / `--section.key=value` spelling, aliases such as `from` used)."""
    rows = []
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        nested = _section(field.annotation)
        if nested is None:
            rows.append((key, _type_name(field.annotation), _default(field), field.description or ""))
        else:
            default = _default(field)
            rows.append(
                (
                    key,
                    "section",
                    default if default in ("required", "null") else "its keys' defaults",
                    field.description or "",
                )
            )
            rows += schema_rows(nested, key + ".")
    return rows


def config_help(
    model: type[BaseModel], train_defaults: dict[str, Any] | None = None, registries: tuple[Registry, ...] = ()
) -> str:
    """The text of `--help-config`: the model's docstring, one block per key, the `train:` defaults
    and every registry entry with its reference."""
    lines = [(model.__doc__ or model.__name__).strip(), ""]
    for key, type_name, default, doc in schema_rows(model):
        lines.append(f"{key}  ({type_name}, default {default})")
        if doc:
            lines.append(f"    {doc}")
    if train_defaults is not None:
        lines += ["", "train: any transformers.TrainingArguments field; kinherit's defaults:"]
        lines += [f"    {key}: {value!r}" for key, value in train_defaults.items()]
    for registry in registries:
        lines += ["", f"{registry.kind} choices:"] + [f"    {line}" for line in registry.describe()]
    return "\n".join(lines)


def references_epilog(*registries: Registry) -> str:
    """`--help` epilog: every entry of `registries` with the paper it implements."""
    lines = ["references:"]
    for registry in registries:
        lines += [f"  {registry.kind} {line}" for line in registry.describe()]
    return "\n".join(lines)

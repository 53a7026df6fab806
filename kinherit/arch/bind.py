"""Bind a family's tensor specs to the keys of a concrete state dict, checking every shape.

No silent mismatches: every key must match exactly one spec, every required spec must be present
in every layer, and every growable axis must have the size the config implies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from kinherit.arch.shape import Shape
from kinherit.arch.spec import TensorSpec
from kinherit.errors import KinheritError


@dataclass(frozen=True)
class Bound:
    """A spec bound to one key: `layer` is None for global tensors."""

    key: str
    spec: TensorSpec
    layer: int | None


def expected_shape(spec: TensorSpec, shape: Shape, actual: tuple[int, ...]) -> tuple[int, ...]:
    """The shape `spec` implies under `shape`; `fixed` axes take the actual size."""
    sizes = shape.space_sizes()
    return tuple(
        actual[i] if axis.kind == "fixed" else sum(sizes[s] for s in axis.spaces) for i, axis in enumerate(spec.axes)
    )


def bind(
    specs: tuple[TensorSpec, ...],
    shape: Shape,
    state: Mapping[str, torch.Tensor],
    require_all: bool = True,
) -> list[Bound]:
    """All bound tensors of `state`, in spec order. `require_all=False` accepts a subset of the
    family's tensors (a partial delta); unknown keys and wrong shapes are errors either way."""
    by_key: dict[str, Bound] = {}
    for spec in specs:
        layers: list[int | None] = list(range(shape.layers)) if spec.per_layer else [None]
        present = [spec.name.format(layer=i) in state for i in layers]
        if (spec.optional or not require_all) and not any(present):
            continue
        for layer, here in zip(layers, present):
            key = spec.name.format(layer=layer)
            if not here and not require_all:
                continue
            if not here:
                raise KinheritError(f"weights are missing {key!r} (expected by the family description)")
            assert key not in by_key, f"{key} matched twice"
            by_key[key] = Bound(key, spec, layer)
    unknown = sorted(set(state) - set(by_key))
    if unknown:
        raise KinheritError(f"weights have tensors the family description does not know: {unknown[:5]}")
    for key, bound in by_key.items():
        actual = tuple(state[key].shape)
        want = expected_shape(bound.spec, shape, actual) if len(actual) == len(bound.spec.axes) else None
        if want != actual:
            raise KinheritError(f"{key} has shape {actual}, but the config implies {want}")
    return list(by_key.values())

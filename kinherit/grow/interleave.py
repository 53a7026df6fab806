"""Per-head interleaved fused axes (`/head` in the axis notation, e.g. GPT-NeoX's `query_key_value`).

An interleaved axis over segments s_1..s_k is G head groups, group g holding the g-th size(s_i)/G channels
of every segment in order. `to_segments` permutes it into the concatenated layout [s_1 | ... | s_k] that
the growth operators act on; `to_heads` is its inverse. Both are pure permutations, so growth stays linear.
G is the head count of the first segment's map (`UnitMap.block` = head_dim).
"""

from __future__ import annotations

import dataclasses

import torch

from kinherit.arch.spec import Axis, TensorSpec
from kinherit.grow.maps import UnitMap


def _sizes(axis: Axis, maps: dict[str, UnitMap], grown: bool) -> tuple[list[int], int]:
    """Segment sizes on the axis and the head count G (source side, or grown side with `grown`)."""
    sizes = [maps[s].new if grown else maps[s].old for s in axis.spaces]
    first = maps[axis.spaces[0]]
    groups = sizes[0] // first.block
    assert all(n % groups == 0 for n in sizes), f"segments {sizes} do not split into {groups} heads"
    return sizes, groups


def to_segments(x: torch.Tensor, dim: int, axis: Axis, maps: dict[str, UnitMap], grown: bool) -> torch.Tensor:
    """(…, G·Σ b_i, …) interleaved per head -> (…, Σ G·b_i, …) concatenated segments."""
    sizes, groups = _sizes(axis, maps, grown)
    per_head = [n // groups for n in sizes]
    pieces = x.unflatten(dim, (groups, sum(per_head))).split(per_head, dim + 1)  # each (…, G, b_i, …)
    return torch.cat([p.flatten(dim, dim + 1) for p in pieces], dim)


def to_heads(x: torch.Tensor, dim: int, axis: Axis, maps: dict[str, UnitMap], grown: bool) -> torch.Tensor:
    """Inverse of `to_segments`: concatenated segments -> interleaved per head."""
    sizes, groups = _sizes(axis, maps, grown)
    pieces = [p.unflatten(dim, (groups, n // groups)) for p, n in zip(x.split(sizes, dim), sizes)]
    return torch.cat(pieces, dim + 1).flatten(dim, dim + 1)


def plain(spec: TensorSpec) -> TensorSpec:
    """`spec` with its interleaved axes read as concatenated segments (after `to_segments`)."""
    return dataclasses.replace(spec, axes=tuple(dataclasses.replace(a, interleaved=False) for a in spec.axes))


def segments_layout(
    x: torch.Tensor, spec: TensorSpec, maps: dict[str, UnitMap], grown: bool
) -> tuple[torch.Tensor, TensorSpec]:
    """x with every interleaved axis permuted to concatenated segments, and the matching plain spec."""
    for dim, axis in enumerate(spec.axes):
        if axis.interleaved:
            x = to_segments(x, dim, axis, maps, grown)
    return x, plain(spec)


def heads_layout(x: torch.Tensor, spec: TensorSpec, maps: dict[str, UnitMap], grown: bool) -> torch.Tensor:
    """Inverse of `segments_layout`: permute every interleaved axis of `spec` back to per-head groups."""
    for dim, axis in enumerate(spec.axes):
        if axis.interleaved:
            x = to_heads(x, dim, axis, maps, grown)
    return x

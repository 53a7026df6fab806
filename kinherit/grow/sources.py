"""Where every grown tensor comes from: its source tensor and, per axis, the channel-level unit map it was grown
through, for a caller that must grow other per-parameter state the same way (AdamW's moments in a staged run).

For a target tensor T grown from source tensor S, with `axes[d]` the map of axis d (None: the axis does not
grow), the linear part of growth is

    T = factor · G_{n-1}(… G_0(S)),   G_d(x) = axes[d].map.gather(x, d, divide=axes[d].divides)

then zeroed when `zeroed` (a residual-out tensor of a new identity layer), and, with AKI (`donor`), the repeated
producer rows taken from the donor layer's tensor instead. On top come the additive terms (symmetry-breaking
noise, the rows of drawn units), which `surgery.grow_state` adds. Each map is laid out like the tensor's axis:
fused segments (`q+kv+kv`) concatenated with their source offsets, per-head interleaved axes permuted back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from kinherit.arch.spec import Axis, TensorSpec
from kinherit.grow.interleave import to_heads
from kinherit.grow.maps import UnitMap
from kinherit.grow.plan import GrowthPlan
from kinherit.grow.surgery import sqrt_scale, tied_embedding_scale
from kinherit.grow.width import WIDTH_OPERATORS


@dataclass(frozen=True)
class AxisSource:
    """One growing axis: `kind` "out" (a producer: copies), "in" (a consumer: copies divided by the count) or
    "norm"; `divides` says whether the copies were divided by their count (consumers, and the norms before a tied
    head)."""

    kind: Literal["in", "out", "norm"]
    divides: bool
    map: UnitMap  # channel-level, in the tensor's layout along this axis (new position -> source position, -1: drawn)


@dataclass(frozen=True)
class TensorSource:
    source: str  # the source tensor's name (same key naming as the source model's state dict)
    axes: tuple[AxisSource | None, ...]  # per dimension; None: not grown
    factor: float = 1.0  # constant scale (√(d/d') of Gemma's embedding; the tied head's norm compensation)
    zeroed: bool = False  # a residual-out tensor of a new identity layer: zero at growth (plus cancelling noise)
    layer: int | None = None  # the target layer, for per-layer tensors
    source_layer: int | None = None
    new_layer: bool = False  # the target layer repeats a source layer an earlier target layer already copies
    donor: str | None = None  # AKI: the repeated copies' producer rows come from this source tensor


def tensor_sources(plan: GrowthPlan) -> dict[str, TensorSource]:
    """Target tensor name → its `TensorSource`, for every tensor the family table describes (optional tensors a
    model lacks are included; look up the names you have). A tied head maps like the embedding it is tied to. Dense
    growth only: an upcycled plan's expert, router and shared-expert tensors (`plan.upcycle`) have no single source and
    are not listed."""
    family, head = plan.family_spec()
    maps = plan.channel_maps()
    operator = WIDTH_OPERATORS.lookup(plan.width)
    head_gain = 1.0 / tied_embedding_scale(plan)
    out: dict[str, TensorSource] = {}
    for spec in family.tensors(head.architecture):
        if plan.tied and spec.name == head.tied[0]:  # the tied head is the embedding (one parameter)
            out[spec.name] = out[head.tied[1]]
            continue
        scale_norm = plan.tied and spec.name in head.head_norms
        axes = tuple(_axis(axis, maps, scale_norm) for axis in spec.axes)
        factor = sqrt_scale(spec, plan) * (head_gain if scale_norm else 1.0)
        if not spec.per_layer:
            out[spec.name] = TensorSource(spec.name, axes, factor)
            continue
        seen: set[int] = set()
        for j, (src, zeroed) in enumerate(plan.layers):
            donor = operator.donor_layer(src, plan.source_shape.layers)
            out[spec.name.format(layer=j)] = TensorSource(
                spec.name.format(layer=src),
                axes,
                factor,
                zeroed=zeroed and spec.residual_out,
                layer=j,
                source_layer=src,
                new_layer=src in seen,
                donor=spec.name.format(layer=donor) if donor is not None and _produces(spec) else None,
            )
            seen.add(src)
    if plan.upcycle is not None:  # the dense MLPs became experts
        out = {k: v for k, v in out.items() if ".mlp." not in k}
    return out


def _produces(spec: TensorSpec) -> bool:
    return any(axis.kind in ("out", "norm") for axis in spec.axes)


def _axis(axis: Axis, maps: dict[str, UnitMap], scale_norm: bool) -> AxisSource | None:
    """The axis's channel map over its fused segments, in the tensor's layout."""
    if axis.kind == "fixed" or all(maps[s].is_identity for s in axis.spaces):
        return None
    index, offset = [], 0
    for space in axis.spaces:
        m = maps[space]
        index.append(torch.where(m.live, m.index + offset, m.index))  # (new,) source positions, -1 drawn
        offset += m.old
    grown = torch.cat(index)
    if axis.interleaved:  # source positions in the per-head layout, new positions permuted per head
        source_order = to_heads(torch.arange(offset), 0, axis, maps, grown=False)  # heads position -> segment position
        where = torch.empty_like(source_order)
        where[source_order] = torch.arange(offset)  # segment position -> heads position
        grown = to_heads(torch.where(grown >= 0, where[grown.clamp(min=0)], grown), 0, axis, maps, grown=True)
    divides = axis.kind == "in" or (axis.kind == "norm" and scale_norm)
    return AxisSource(axis.kind, divides, UnitMap(offset, grown.tolist()))  # type: ignore[arg-type]

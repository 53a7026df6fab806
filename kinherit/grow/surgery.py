"""Weight surgery: apply a `GrowthPlan` to a state dict, one target tensor at a time.

Every step is linear in the weights (index copies, divisions by replication counts, zeroing), and
noise is a separate additive term, so `grow(A + D) = grow(A) + grow_map(D)` with
`grow_map = grow_state(..., noise=False)`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import torch

from kinherit.arch import bind
from kinherit.arch.spec import TensorSpec
from kinherit.errors import KinheritError
from kinherit.grow.maps import UnitMap
from kinherit.grow.noise import consumer_axis, noise_std, noise_term
from kinherit.grow.width import WIDTH_OPERATORS

if TYPE_CHECKING:
    from kinherit.grow.plan import GrowthPlan


def widen(x: torch.Tensor, spec: TensorSpec, maps: dict[str, UnitMap], scale_norm: bool) -> torch.Tensor:
    """Grow every non-fixed axis of x: producers/norms copy, consumers copy and divide.
    `scale_norm` divides a norm too (norms feeding a tied head, see HeadSpec)."""
    out = x
    for dim, axis in enumerate(spec.axes):
        if axis.kind == "fixed":
            continue
        divide = axis.kind == "in" or (axis.kind == "norm" and scale_norm)
        pieces, offset = [], 0
        for space in axis.spaces:
            m = maps[space]
            pieces.append(m.gather(out.narrow(dim, offset, m.old), dim, divide))
            offset += m.old
        assert offset == out.shape[dim], f"{spec.name}: axis {dim} has {out.shape[dim]} != {offset}"
        out = torch.cat(pieces, dim) if len(pieces) > 1 else pieces[0]
    return out.clone() if out is x else out


def fresh_mask(spec: TensorSpec, maps: dict[str, UnitMap]) -> torch.Tensor | None:
    """Boolean mask (broadcastable to the grown tensor) of new units on the producer axis."""
    for dim, axis in enumerate(spec.axes):
        if axis.kind in ("out", "norm"):
            mask = torch.cat([maps[s].fresh for s in axis.spaces])
            shape = [1] * len(spec.axes)
            shape[dim] = mask.numel()
            return mask.view(shape)
    return None


def grow_state(
    plan: GrowthPlan,
    state: Mapping[str, torch.Tensor],
    *,
    noise: bool = True,
    strict: bool = True,
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (target key, grown tensor). `strict=False` maps only the tensors present in `state`
    (e.g. a partial fine-tuning delta); otherwise the key set must match the family exactly."""
    family, head = plan.family_spec()
    maps = plan.channel_maps()
    operator = WIDTH_OPERATORS.lookup(plan.width)
    state = dict(state)
    if plan.tied and head.tied[0] not in state and head.tied[1] in state:
        state[head.tied[0]] = state[head.tied[1]]  # safetensors files store tied weights once
    bound = bind(family.tensors(head.architecture), plan.source_shape, state, require_all=strict)
    by_spec: dict[TensorSpec, dict[int | None, str]] = {}
    for b in bound:
        by_spec.setdefault(b.spec, {})[b.layer] = b.key
    emitted: dict[str, torch.Tensor] = {}
    add_noise = noise and plan.noise_db is not None

    def one(spec: TensorSpec, key: str, layer: int | None, zeroed: bool) -> torch.Tensor:
        src_keys = by_spec[spec]
        scale_norm = plan.tied and spec.name in head.head_norms
        x = widen(state[src_keys[layer]], spec, maps, scale_norm)
        if operator.donor_next_layer and layer is not None and layer + 1 in src_keys:
            mask = fresh_mask(spec, maps)
            if mask is not None:
                x = torch.where(mask, widen(state[src_keys[layer + 1]], spec, maps, scale_norm), x)
        if zeroed and spec.residual_out:
            return x.mul_(0.0)  # linear zeroing (x is a fresh tensor)
        dim = consumer_axis(spec, maps) if add_noise else None
        if dim is not None:
            if key not in plan.noise_std:
                plan.noise_std[key] = noise_std(x, plan.noise_db)
            x.add_(noise_term(key, tuple(x.shape), dim, spec, maps, plan.noise_std[key], plan.noise_seed))
        return x

    for spec, src_keys in by_spec.items():
        if plan.tied and spec.name == head.tied[0]:
            if head.tied[1] not in emitted:
                raise KinheritError(f"{spec.name} is tied to {head.tied[1]}, which is missing")
            yield spec.name, emitted[head.tied[1]]
            continue
        if not spec.per_layer:
            emitted[spec.name] = one(spec, spec.name, None, False)
            yield spec.name, emitted[spec.name]
            continue
        for j, (src, zeroed) in enumerate(plan.layers):
            needs_donor = operator.donor_next_layer and src + 1 < plan.source_shape.layers
            if src in src_keys and (not needs_donor or src + 1 in src_keys):
                yield spec.name.format(layer=j), one(spec, spec.name.format(layer=j), src, zeroed)

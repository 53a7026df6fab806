"""Weight surgery: apply a `GrowthPlan` to a state dict, one target tensor at a time.

Every step is linear in the weights (index copies, divisions by replication counts, constant factors,
zeroing) up to the constant offsets of (offset + w) parameters (`TensorSpec.offset`), and noise is a
separate additive term, so `grow(A + D) = grow(A) + grow_map(D)` with
`grow_map = grow_state(..., noise=False, linear=True)`. Nothing here mutates its inputs: the noise
scales are resolved once into a new plan (`resolve_noise`), and `grow_state` only reads the plan.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping

import torch

from kinherit.arch import bind
from kinherit.arch.spec import TensorSpec
from kinherit.errors import KinheritError
from kinherit.grow.interleave import heads_layout, segments_layout
from kinherit.grow.maps import UnitMap
from kinherit.grow.noise import consumer_axis, drawn_term, noise_std, noise_term, unit_mask
from kinherit.grow.plan import GrowthPlan
from kinherit.grow.upcycle import needs_resolving, resolve_expert_noise, upcycle_tensors
from kinherit.grow.width import WIDTH_OPERATORS


def widen(x: torch.Tensor, spec: TensorSpec, maps: dict[str, UnitMap], scale_norm: bool) -> torch.Tensor:
    """Grow every non-fixed axis of x: producers/norms copy, consumers copy and divide.
    `scale_norm` divides a norm too (norms feeding a tied head, see HeadSpec). Axes interleaved per head
    are grown as concatenated segments and interleaved again over the grown heads."""
    if any(axis.interleaved for axis in spec.axes):
        x, flat = segments_layout(x, spec, maps, grown=False)
        return heads_layout(widen(x, flat, maps, scale_norm), spec, maps, grown=True)
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


def sqrt_scale(spec: TensorSpec, plan: GrowthPlan) -> float:
    """c = √(d/d') for a tensor the model multiplies by √d of a space that grows d → d' (1 otherwise)."""
    if spec.scaled_by_sqrt is None:
        return 1.0
    space = spec.scaled_by_sqrt
    return math.sqrt(plan.source_shape.space_sizes()[space] / plan.target_shape.space_sizes()[space])


def tied_embedding_scale(plan: GrowthPlan) -> float:
    """The factor c the tied embedding (= the LM head) is multiplied by; the head norms are multiplied
    by 1/c on top of the division by the replication count (see HeadSpec), and a classifier reading
    the compensated hidden state copies its columns times c."""
    family, head = plan.family_spec()
    if not plan.tied:
        return 1.0
    embedding = next(s for s in family.tensors(head.architecture) if s.name == head.tied[1])
    return sqrt_scale(embedding, plan)


def _grown_tensors(
    plan: GrowthPlan, state: Mapping[str, torch.Tensor], strict: bool, zero: bool = True, linear: bool = False
) -> Iterator[tuple[str, TensorSpec, torch.Tensor | None]]:
    """Yield (target key, spec, grown tensor before noise); the tensor is None for a tied head, which
    the caller takes from the tensor it is tied to. `zero=False` skips the zeroing of the residual
    outputs of new identity layers (to measure their scale). `linear` drops the offsets of (offset + w)
    parameters: the map of a delta."""
    family, head = plan.family_spec()
    head_gain = 1.0 / tied_embedding_scale(plan)
    maps = plan.channel_maps()
    operator = WIDTH_OPERATORS.lookup(plan.width)
    if plan.tied and head.tied[0] not in state and head.tied[1] in state:
        state = _Aliased(state, head.tied[0], head.tied[1])  # safetensors files store tied weights once
    bound = bind(family.tensors(head.architecture), plan.source_shape, state, require_all=strict)
    by_spec: dict[TensorSpec, dict[int | None, str]] = {}
    for b in bound:
        by_spec.setdefault(b.spec, {})[b.layer] = b.key

    def one(spec: TensorSpec, layer: int | None, zeroed: bool) -> torch.Tensor:
        src_keys = by_spec[spec]
        scale_norm = plan.tied and spec.name in head.head_norms
        offset = 0.0 if linear else spec.offset

        def effective(key: str) -> torch.Tensor:  # the grown offset + w
            return widen(state[key] + offset if offset else state[key], spec, maps, scale_norm)

        x = effective(src_keys[layer])
        donor = None if layer is None else operator.donor_layer(layer, plan.source_shape.layers)
        if donor is not None and donor in src_keys and _produces(spec):
            x = torch.where(unit_mask(spec, maps, ("out", "norm"), "repeat"), effective(src_keys[donor]), x)
        factor = sqrt_scale(spec, plan) * (head_gain if scale_norm else 1.0)
        if factor != 1.0:
            x.mul_(factor)  # x is a fresh tensor
        if zero and zeroed and spec.residual_out:
            x.mul_(0.0)  # linear zeroing
        return x.sub_(offset) if offset else x

    for spec, src_keys in by_spec.items():
        if plan.tied and spec.name == head.tied[0]:
            yield spec.name, spec, None
        elif not spec.per_layer:
            yield spec.name, spec, one(spec, None, False)
        else:
            for j, (src, zeroed) in enumerate(plan.layers):
                donor = operator.donor_layer(src, plan.source_shape.layers)
                if src in src_keys and (donor is None or donor in src_keys):
                    yield spec.name.format(layer=j), spec, one(spec, src, zeroed)


def _produces(spec: TensorSpec) -> bool:
    return any(axis.kind in ("out", "norm") for axis in spec.axes)


class _Aliased(Mapping[str, torch.Tensor]):
    """`state` plus the key `alias`, which reads `state[target]`; nothing is read before it is looked up (the
    state may be a folder read tensor by tensor, `shards.FolderTensors`)."""

    def __init__(self, state: Mapping[str, torch.Tensor], alias: str, target: str):
        self.state, self.alias, self.target = state, alias, target

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.state[self.target if key == self.alias else key]

    def __contains__(self, key: object) -> bool:
        return key == self.alias or key in self.state

    def __iter__(self) -> Iterator[str]:
        yield from self.state
        yield self.alias

    def __len__(self) -> int:
        return len(self.state) + 1


def resolve_noise(plan: GrowthPlan, state: Mapping[str, torch.Tensor]) -> GrowthPlan:
    """A copy of `plan` with the noise scale of every tensor whose input axis grows: std(grown W)·10^(−SNR/20),
    measured on the grown tensor of `state` (the source weights) before noise and before zeroing. The
    zeroed residual outputs of new identity layers get noise too: it sums to zero over the copies of each
    input unit, so their output stays exactly 0 while the copies feeding them get different gradients.
    With drawn units (`--width zero`), also the (mean, std) of every tensor that produces one, over its copied
    entries: the statistics its drawn rows are sampled with (`noise.drawn_term`)."""
    if plan.upcycle is not None and needs_resolving(plan.upcycle):
        dense = ((key, x) for key, _, x in _grown_tensors(plan, state, strict=True) if x is not None)
        plan = dataclasses.replace(plan, upcycle=resolve_expert_noise(plan.upcycle, dense))
    maps = plan.channel_maps()
    if plan.has_drawn_units and plan.drawn_stats is None:
        stats = {}
        for key, spec, x in _grown_tensors(plan, state, strict=True, zero=False):
            if x is not None and _produces(spec) and bool(unit_mask(spec, maps, ("out", "norm"), "drawn").any()):
                copied = x[unit_mask(spec, maps, ("out", "norm", "in"), "live").expand_as(x)]
                stats[key] = (float(copied.mean()), float(copied.std()) if copied.numel() > 1 else 0.0)
        plan = dataclasses.replace(plan, drawn_stats=stats)
    if plan.noise_db is None or plan.noise_std is not None:
        return plan
    stds = {
        key: noise_std(x, plan.noise_db)
        for key, spec, x in _grown_tensors(plan, state, strict=True, zero=False)
        if x is not None and consumer_axis(spec, maps) is not None
    }
    return dataclasses.replace(plan, noise_std=stds)


def grow_state(
    plan: GrowthPlan,
    state: Mapping[str, torch.Tensor],
    *,
    noise: bool = True,
    strict: bool = True,
    linear: bool = False,
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (target key, grown tensor). `strict=False` maps only the tensors present in `state`
    (e.g. a partial fine-tuning delta); otherwise the key set must match the family exactly.
    `linear` applies only the linear part (no offsets of (offset + w) parameters): the map of a delta.
    With noise, the plan's noise scales must be resolved (`resolve_noise`). An upcycling plan turns
    the grown dense MLPs into experts (`upcycle.upcycle_tensors`; its router init counts as noise)."""
    dense = _grow_dense(plan, state, noise=noise, strict=strict, linear=linear)
    if plan.upcycle is None:
        return dense
    return upcycle_tensors(plan.upcycle, dense, noise=noise, strict=strict)


def _grow_dense(
    plan: GrowthPlan, state: Mapping[str, torch.Tensor], *, noise: bool, strict: bool, linear: bool
) -> Iterator[tuple[str, torch.Tensor]]:
    """`grow_state` of the width and depth operators (the dense model before any upcycling)."""
    _, head = plan.family_spec()
    maps = plan.channel_maps()
    add_noise = noise and plan.noise_db is not None
    if add_noise and plan.noise_std is None:
        raise KinheritError("the growth plan has noise but no resolved noise scales (call resolve_noise first)")
    drawn = plan.drawn_stats if noise and plan.has_drawn_units else None
    if noise and plan.has_drawn_units and drawn is None:
        raise KinheritError("the growth plan draws new units but has no resolved statistics (call resolve_noise first)")
    emitted: dict[str, torch.Tensor] = {}
    for key, spec, x in _grown_tensors(plan, state, strict, linear=linear):
        if x is None:  # tied head: the embedding it is tied to
            if head.tied[1] not in emitted:
                raise KinheritError(f"{spec.name} is tied to {head.tied[1]}, which is missing")
            yield key, emitted[head.tied[1]]
            continue
        if add_noise and key in plan.noise_std:
            dim = consumer_axis(spec, maps)
            x.add_(noise_term(key, tuple(x.shape), dim, spec, maps, plan.noise_std[key], plan.noise_seed))
        if drawn is not None and key in drawn:
            x.add_(drawn_term(key, tuple(x.shape), spec, maps, *drawn[key], plan.noise_seed))
        if plan.tied and key == head.tied[1]:  # kept for the tied head only
            emitted[key] = x
        yield key, x

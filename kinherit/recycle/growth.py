"""Carry fine-tuned tensors across a growth A → B = grow(A) recorded in a `growth.json` plan.

Backbone deltas go through the grow module's linear map G (`kinherit.grow.grow_map`), so for exact
operators `grow(A_tuned) = grow(A) + G(A_tuned − A)`. Classification heads are described by each
family record's `classifier` (same axis notation, `kinherit.arch.spec`) and widened with the same
surgery: a head reading the hidden state copies and divides its input columns by the
replication count, `S'[:, j] = S[:, idx(j)] / count(idx(j))`, so `S' h' = S h` on `h' = h[idx]`.

One exception: with tied LM embeddings the grow module divides the final norm by the replication
count instead of the (tied) head, so the backbone of B = grow(A) emits `h[idx] / count`; a head
reading that copies its columns without dividing. When the tied embedding is also scaled by c
(Gemma's √(d/d'), see `HeadSpec`), B emits `h[idx] / (c·count)` and the head's columns are copied times c.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import PretrainedConfig

from kinherit.arch import FAMILIES, Axis, TensorSpec, read_shape
from kinherit.errors import KinheritError
from kinherit.grow import GrowthPlan, grow_map, load_plan
from kinherit.grow.surgery import tied_embedding_scale, widen


def family_of(config: PretrainedConfig, role: str) -> str:
    for name, family in FAMILIES.items():
        if config.model_type in family.model_types:
            return name
    raise KinheritError(f"{role} is a {config.model_type!r} model; recycling supports {', '.join(FAMILIES)}")


def resolve_growth(
    old: PretrainedConfig, new: PretrainedConfig, new_dir: str | Path, growth: str | Path | None
) -> GrowthPlan | None:
    """The plan that grew OLD_BASE's shape into NEW_BASE's (from `growth`, else NEW_BASE/growth.json),
    or None when both have the same shape and no plan is given. A plan that upcycled OLD_BASE into a
    mixture of experts lets NEW_BASE be of that MoE family (its shape is read with OLD_BASE's keys)."""
    family = family_of(old, "OLD_BASE")
    recorded = Path(new_dir) / "growth.json"
    if growth is None and recorded.is_file():
        growth = recorded
    plan = load_plan(growth) if growth is not None else None
    upcycled = plan is not None and plan.upcycle is not None and plan.upcycle.config.get("model_type") == new.model_type
    if not upcycled and family_of(new, "NEW_BASE") != family:
        raise KinheritError(
            f"NEW_BASE is a {new.model_type} model but OLD_BASE is {old.model_type}; recycling maps weights "
            "tensor by tensor within one family (use distillation instead: kinherit finetune with teacher:)"
        )
    if old.vocab_size != new.vocab_size:
        raise KinheritError(
            f"NEW_BASE has {new.vocab_size} tokens, OLD_BASE {old.vocab_size}; recycling needs the same tokenizer"
        )
    spec = FAMILIES[family]
    old_shape, new_shape = read_shape(spec, old), read_shape(spec, new)
    if plan is None:
        if old_shape != new_shape:
            raise KinheritError(
                f"NEW_BASE's shape {new_shape.as_dict()} differs from OLD_BASE's {old_shape.as_dict()} and NEW_BASE "
                "has no growth.json; make NEW_BASE with `kinherit grow OLD_BASE ...` (it records the plan) or pass "
                "--growth GROWN_DIR/growth.json of the grow run it was continued from"
            )
        return None
    if plan.family != family or plan.source_shape != old_shape or plan.target_shape != new_shape:
        raise KinheritError(
            f"growth plan {growth} grows a {plan.family} {plan.source_shape.as_dict()} into "
            f"{plan.target_shape.as_dict()}, but OLD_BASE is {family} {old_shape.as_dict()} and NEW_BASE "
            f"{new_shape.as_dict()}"
        )
    return plan


def map_backbone(plan: GrowthPlan, tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """G(tensors) for backbone tensors keyed under the classifier's `prefix` (e.g. `model.`)."""
    _, head = plan.family_spec()
    renamed = {head.base_prefix + k.removeprefix(prefix): v for k, v in tensors.items()}
    grown = grow_map(plan, renamed)
    return {prefix + k.removeprefix(head.base_prefix): v for k, v in grown.items() if k.startswith(head.base_prefix)}


def _reads_scaled_hidden(plan: GrowthPlan) -> bool:
    """True when B's backbone output is `h[idx] / count` (tied head compensated in the final norm)."""
    family, head = plan.family_spec()
    base = {s.name for s in family.base_tensors}
    return plan.tied and any(
        n.startswith(head.base_prefix) and n.removeprefix(head.base_prefix) in base for n in head.head_norms
    )


def map_head(plan: GrowthPlan, tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Grow the task head of A_tuned: backbone-level tensors (BERT's pooler) through G, the
    classifier through the family's `classifier` specs (see the module docstring)."""
    specs = {s.name: s for s in FAMILIES[plan.family].classifier}
    inside = {k: v for k, v in tensors.items() if k.startswith(prefix)}
    out = map_backbone(plan, inside, prefix) if inside else {}
    maps = plan.channel_maps()
    scaled = _reads_scaled_hidden(plan)
    for key, value in tensors.items():
        if key in inside:
            continue
        if key not in specs:
            raise KinheritError(
                f"A_TUNED's head tensor {key!r} is not a known {plan.family} classifier tensor; cannot map it "
                "through growth"
            )
        spec = specs[key]
        if scaled:  # copy, not divide: the copies of h already carry 1/(c·count)
            spec = TensorSpec(spec.name, tuple(Axis("out", a.spaces) if a.kind == "in" else a for a in spec.axes))
            value = value * tied_embedding_scale(plan)
        out[key] = widen(value, spec, maps, scale_norm=False)
    return out

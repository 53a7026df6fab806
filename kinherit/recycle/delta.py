"""Initialization-based recycling of a full fine-tuning: start B's fine-tuning from

    θ_B' = θ_B + λ·(θ_A_tuned − θ_A)              same shape (B continually pre-trained from A)
    θ_B' = θ_B + λ·G(θ_A_tuned − θ_A)             B = grow(A), G the plan's linear growth map

for every backbone tensor, and the task head (tensors A_tuned has and A has not: `score`,
`classifier`, BERT's pooler) taken from A_tuned (widened by the plan when B was grown). Tensors only A
has (its LM head) are skipped. Every shared tensor must have the same shape in A and A_tuned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from kinherit.errors import KinheritError
from kinherit.grow import GrowthPlan
from kinherit.hf_folder import is_adapter, is_classifier, load_classifier, load_lm, load_model_tokenizer, read_config
from kinherit.io import atomic_dir, write_json
from kinherit.recycle.growth import map_backbone, map_head, resolve_growth

REPORT_FILE = "recycle.json"


@dataclass
class RecycleReport:
    """What happened to every tensor of the starting point."""

    method: str
    scale: float
    growth: str | None = None  # e.g. "clone: hidden 32→64, layers 2→4"
    transferred: list[str] = field(default_factory=list)  # B + λ·Δ
    mapped: list[str] = field(default_factory=list)  # B + λ·G(Δ)
    head: list[str] = field(default_factory=list)  # from A_tuned (widened when grown)
    kept: list[str] = field(default_factory=list)  # B's own value, no tuned counterpart
    skipped: dict[str, str] = field(default_factory=dict)  # A's tensor -> why it was not used

    def lines(self) -> list[str]:
        out = [
            f"{self.method} recycling, λ = {self.scale:g}"
            + (f", through growth ({self.growth})" if self.growth else "")
        ]
        lora = self.method == "adapter"
        if self.transferred:
            how = "LoRA factors moved to B as they are (λ scales lora_B)" if lora else "B + λ·(A_tuned − A), same shape"
            out.append(f"  transferred {len(self.transferred)} tensors: {how}")
        if self.mapped:
            how = "lora_B widened like the weight's rows, lora_A like its columns" if lora else "B + λ·G(A_tuned − A)"
            out.append(f"  mapped {len(self.mapped)} tensors through growth: {how}")
        if self.head:
            out.append(
                f"  head: {len(self.head)} tensors from A_tuned ({', '.join(self.head)})"
                + (", widened" if self.growth else "")
            )
        if self.kept:
            out.append(
                f"  kept {len(self.kept)} tensors of B unchanged (no tuned counterpart): {', '.join(self.kept[:5])}"
            )
        for key, why in self.skipped.items():
            out.append(f"  skipped {key}: {why}")
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def describe_growth(plan: GrowthPlan) -> str:
    src, tgt = plan.source_shape.as_dict(), plan.target_shape.as_dict()
    changed = ", ".join(f"{k} {src[k]}→{tgt[k]}" for k in src if src[k] != tgt[k]) or "same shape"
    return f"{plan.width}/{plan.depth}: {changed}"


def task_delta(
    base: Mapping[str, torch.Tensor], tuned: Mapping[str, torch.Tensor], prefix: str
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, str]]:
    """(Δ = A_tuned − A on shared tensors, the head = A_tuned-only tensors, skipped A-only tensors).
    Every backbone tensor of A (under `prefix`) must exist in A_tuned with the same shape."""
    for key in sorted(base):
        if key.startswith(prefix) and key not in tuned:
            raise KinheritError(f"A_TUNED has no tensor {key!r} of OLD_BASE; it was not fine-tuned from OLD_BASE")
        if key in tuned and tuned[key].shape != base[key].shape:
            raise KinheritError(
                f"tensor {key!r} is {tuple(tuned[key].shape)} in A_TUNED but {tuple(base[key].shape)} in OLD_BASE; "
                "A_TUNED was not fine-tuned from OLD_BASE"
            )
    delta = {k: tuned[k].float() - base[k].float() for k in sorted(base.keys() & tuned.keys())}
    if not delta:
        raise KinheritError("A_TUNED and OLD_BASE share no tensor names; A_TUNED was not fine-tuned from OLD_BASE")
    head = {k: tuned[k] for k in sorted(tuned.keys() - base.keys())}
    skipped = {k: "OLD_BASE's LM head, not used by the classifier" for k in sorted(base.keys() - tuned.keys())}
    return delta, head, skipped


def apply_delta(
    state: dict[str, torch.Tensor], delta: Mapping[str, torch.Tensor], head: Mapping[str, torch.Tensor], scale: float
) -> dict[str, torch.Tensor]:
    """θ + λ·Δ for delta tensors, head tensors replaced; every key must exist in `state` with its shape."""
    out = dict(state)
    for key, value in [*delta.items(), *head.items()]:
        if key not in state:
            raise KinheritError(f"NEW_BASE has no tensor {key!r} to receive A_TUNED's update")
        if state[key].shape != value.shape:
            raise KinheritError(
                f"tensor {key!r} is {tuple(state[key].shape)} in NEW_BASE but {tuple(value.shape)} from A_TUNED"
            )
    for key, value in delta.items():
        out[key] = state[key] + scale * value.to(state[key].dtype)
    for key, value in head.items():
        out[key] = value.to(state[key].dtype).clone()
    return out


def recycle_full(
    old_base: str | Path,
    old_tuned: str | Path,
    new_base: str | Path,
    out: str | Path,
    scale: float = 1.0,
    growth: str | Path | None = None,
) -> RecycleReport:
    """Write the init-based starting point (an HF sequence-classification folder) to `out`."""
    tuned_config = read_config(old_tuned, "A_TUNED") if not is_adapter(old_tuned) else None
    if tuned_config is None:
        raise KinheritError(f"A_TUNED {old_tuned} is a PEFT adapter folder; pass --adapter")
    if not is_classifier(tuned_config):
        raise KinheritError(
            f"A_TUNED {old_tuned} is not a fine-tuned sequence classifier (architectures {tuned_config.architectures})"
        )
    old_config, new_config = read_config(old_base, "OLD_BASE"), read_config(new_base, "NEW_BASE")
    if tuned_config.model_type != old_config.model_type:
        raise KinheritError(f"A_TUNED is a {tuned_config.model_type} model but OLD_BASE is {old_config.model_type}")
    plan = resolve_growth(old_config, new_config, new_base, growth)

    base_state = load_lm(old_base, "OLD_BASE").state_dict()
    tuned, _ = load_classifier(old_tuned, "A_TUNED")
    labels = [tuned.config.id2label[i] for i in range(tuned.config.num_labels)]
    target, _ = load_classifier(Path(new_base).resolve(), "NEW_BASE", labels, tuned.config.pad_token_id)
    prefix = tuned.base_model_prefix + "."
    delta, head, skipped = task_delta(base_state, tuned.state_dict(), prefix)
    report = RecycleReport("init", scale, skipped=skipped)
    if plan is not None:
        delta, head = map_backbone(plan, delta, prefix), map_head(plan, head, prefix)
        report.growth, report.mapped = describe_growth(plan), sorted(delta)
    else:
        report.transferred = sorted(delta)
    report.head = sorted(head)
    state = apply_delta(target.state_dict(), delta, head, scale)
    report.kept = sorted(set(state) - set(delta) - set(head))
    target.load_state_dict(state, strict=True)
    tokenizer = load_model_tokenizer(new_base, "NEW_BASE")
    with atomic_dir(out) as staging:
        target.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        write_json(staging / REPORT_FILE, report.to_dict())
    return report

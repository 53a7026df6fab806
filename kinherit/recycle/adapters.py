"""Initialization-based recycling of a PEFT LoRA adapter: attach A's adapter to B and keep training it.

A LoRA update is ΔW = s·B_r A_r (B_r: out×r, A_r: r×in). Same shape: the adapter is moved as is
(λ scales B_r). Through a growth W' = G(W), which copies output rows and copies-and-divides input
columns, the update maps exactly as G(B_r A_r) = G_out(B_r)·G_in(A_r): lora_B widens like the
weight's output axis, lora_A like its input axis, the rank is unchanged; new depth-grown layers
copy their source layer's adapter, with lora_B zeroed where the layer's residual output is zeroed.
The saved head (`modules_to_save`) is widened like a full fine-tuning's head (`growth.map_head`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from kinherit.arch import Axis, TensorSpec
from kinherit.errors import KinheritError
from kinherit.grow import GrowthPlan
from kinherit.grow.surgery import widen
from kinherit.hf_folder import (
    LABELS_FILE,
    adapter_base,
    adapter_labels,
    is_adapter,
    load_classifier,
    load_model_tokenizer,
    read_adapter,
    read_config,
)
from kinherit.io import atomic_dir, write_json
from kinherit.recycle.delta import REPORT_FILE, RecycleReport, describe_growth
from kinherit.recycle.growth import map_head, resolve_growth

PEFT_PREFIX = "base_model.model."
LORA_SUFFIXES = (".lora_A.weight", ".lora_B.weight")


def _lora_spec(base: TensorSpec, which: str) -> TensorSpec:
    """Axes of lora_A (r, in) or lora_B (out, r) from the adapted weight's spec (Linear or Conv1D)."""
    kinds = {axis.kind: axis for axis in base.axes}
    rank = Axis("fixed", ("rank",))
    axes = (rank, kinds["in"]) if which == "A" else (kinds["out"], rank)
    return TensorSpec(base.name, axes, residual_out=base.residual_out)


def map_adapter(plan: GrowthPlan, tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Grow the LoRA factors and head of a PEFT state dict (keys `base_model.model.<name>`)."""
    if plan.width == "aki":
        raise KinheritError(
            "LoRA adapters cannot be mapped through AKI growth (not linear per layer); recycle a full fine-tuning "
            "instead"
        )
    family, head_spec = plan.family_spec()
    where: dict[str, tuple[TensorSpec, int | None]] = {}
    for spec in family.tensors(plan.architecture):
        layers = range(plan.source_shape.layers) if spec.per_layer else [None]
        for layer in layers:
            where[spec.name.format(layer=layer)] = (spec, layer)
    maps = plan.channel_maps()
    out: dict[str, torch.Tensor] = {}
    head: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        name = key.removeprefix(PEFT_PREFIX)
        suffix = next((s for s in LORA_SUFFIXES if name.endswith(s)), None)
        if suffix is None:
            head[name] = value
            continue
        weight = head_spec.base_prefix + name.removesuffix(suffix).removeprefix(prefix) + ".weight"
        if weight not in where:
            raise KinheritError(
                f"adapter tensor {key!r} adapts {weight!r}, which the {plan.family} family does not have"
            )
        spec, layer = where[weight]
        factor = "A" if suffix == LORA_SUFFIXES[0] else "B"
        grown = widen(value, _lora_spec(spec, factor), maps, scale_norm=False)
        targets = (
            [(None, False)]
            if layer is None
            else [(j, zeroed) for j, (src, zeroed) in enumerate(plan.layers) if src == layer]
        )
        for j, zeroed in targets:
            module = spec.name.format(layer=j).removesuffix(".weight").removeprefix(head_spec.base_prefix)
            silenced = zeroed and spec.residual_out and factor == "B"  # the new layer starts as the identity
            out[PEFT_PREFIX + prefix + module + suffix] = grown * 0.0 if silenced else grown.clone()
    out.update({PEFT_PREFIX + k: v for k, v in map_head(plan, head, prefix).items()})
    return out


def recycle_adapter(
    old_base: str | Path,
    adapter: str | Path,
    new_base: str | Path,
    out: str | Path,
    scale: float = 1.0,
    growth: str | Path | None = None,
) -> RecycleReport:
    """Write A's LoRA adapter, re-based on (and if needed grown to) NEW_BASE, as an adapter folder."""
    from peft import get_peft_model
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

    if not is_adapter(adapter):
        raise KinheritError(
            f"A_TUNED {adapter} is not a PEFT adapter folder (no adapter_config.json); drop --adapter for a full "
            "fine-tuning"
        )
    old_config, new_config = read_config(old_base, "OLD_BASE"), read_config(new_base, "NEW_BASE")
    trained_on = read_config(adapter_base(adapter), "the adapter's base")
    if trained_on.model_type != old_config.model_type:
        raise KinheritError(
            f"adapter {adapter} was trained on a {trained_on.model_type} base, but OLD_BASE is {old_config.model_type}"
        )
    plan = resolve_growth(old_config, new_config, new_base, growth)
    settings, tensors = read_adapter(adapter, "A_TUNED")
    if settings.peft_type != "LORA":
        raise KinheritError(f"adapter {adapter} is {settings.peft_type}; only LoRA adapters can be recycled")
    tokenizer = load_model_tokenizer(new_base, "NEW_BASE")
    target, _ = load_classifier(Path(new_base).resolve(), "NEW_BASE", adapter_labels(adapter), tokenizer.pad_token_id)
    prefix = target.base_model_prefix + "."
    report = RecycleReport("adapter", scale)
    if plan is not None:
        tensors = map_adapter(plan, tensors, prefix)
        report.growth, report.mapped = describe_growth(plan), sorted(k for k in tensors if k.endswith(LORA_SUFFIXES))
    else:
        report.transferred = sorted(k for k in tensors if k.endswith(LORA_SUFFIXES))
    report.head = sorted(k for k in tensors if not k.endswith(LORA_SUFFIXES))
    tensors = {k: v * scale if k.endswith(".lora_B.weight") else v for k, v in tensors.items()}

    settings.inference_mode = False
    settings.base_model_name_or_path = target.name_or_path
    try:
        model = get_peft_model(target, settings)
    except ValueError as err:
        raise KinheritError(
            f"adapter {adapter} does not fit NEW_BASE ({new_config.model_type}): {str(err).splitlines()[0]}"
        ) from None
    expected = get_peft_model_state_dict(model)
    for key in sorted(expected.keys() | tensors.keys()):
        if key not in tensors or key not in expected:
            side = "NEW_BASE has no place for" if key in tensors else "the adapter lacks"
            raise KinheritError(f"adapter {adapter} does not fit NEW_BASE: {side} {key!r}")
        if expected[key].shape != tensors[key].shape:
            raise KinheritError(
                f"adapter tensor {key!r} is {tuple(tensors[key].shape)}, NEW_BASE needs {tuple(expected[key].shape)}"
            )
    set_peft_model_state_dict(model, tensors)
    with atomic_dir(out) as staging:
        model.save_pretrained(str(staging))
        write_json(staging / LABELS_FILE, {"labels": adapter_labels(adapter)})
        write_json(staging / REPORT_FILE, report.to_dict())
    return report

"""A growth of the training state: the one transform a staged run applies at a growth step.

What training at step b depends on and what changes shape is the `TrainingState`: the model's weights, AdamW's
state by parameter name, the per-tensor LR scales and the student FLOPs so far. `grow_state` maps it:

    weights      W' = grow(W)                  verified: logits, and the LM loss on a held batch
    AdamW state  the image of the moments under the growth map (`optimizer_growth.map_adam_state`), or none (`reset`)
    LR scales    per grown tensor (`optimizer_growth.lr_scales`), compounded over stages, with `lr_scaling: growth`
    FLOPs        unchanged (the next stage counts its steps at its own size from here)

Everything else a run carries is shape-free and continues through a growth unchanged: the step count (so Adam's
bias correction and the schedule's position), the data position, the RNG states, the grad scaler and the
objective's state. `write_grown_checkpoint` carries them file by file from the step-b checkpoint, so the next
stage resumes from the grown checkpoint as from any other.

`grow_state` builds no trainer and calls nothing back: it runs on the device the state is on (the held batch is
moved there). A checkpoint's optimizer state is read by name through the names its trainer recorded
(`trainer.OPTIMIZER_PARAMS`) and written by name (`trainer.GROWN_OPTIMIZER`); the next trainer puts it in its own
parameter order.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import PreTrainedModel
from transformers.trainer import OPTIMIZER_NAME, SCHEDULER_NAME

from kinherit.errors import KinheritError
from kinherit.grow.api import grow
from kinherit.grow.options import GrowthOptions
from kinherit.io import read_json, replace_dir, write_json
from kinherit.train.optimizer_growth import Moments, lr_scales, map_adam_state
from kinherit.train.trainer import GROWN_OPTIMIZER, OPTIMIZER_PARAMS, STAGE_STATE, STAGING, adds_router_loss

LOSS_TOLERANCE = 1e-4
"""|loss after − loss before| on the held batch allowed for an operator that claims exactness (fp32)."""

ADAM_STATE = frozenset({"step", "exp_avg", "exp_avg_sq"})
"""The keys of one parameter's state in torch's Adam/AdamW (what `map` can carry through a growth)."""

_REPLACED = frozenset({OPTIMIZER_NAME, SCHEDULER_NAME, OPTIMIZER_PARAMS, GROWN_OPTIMIZER, STAGE_STATE})
"""Checkpoint files a growth writes anew (besides the model's own files)."""


@dataclass
class TrainingState:
    """The shape-dependent part of a run's state at `step` (see the module docstring)."""

    model: PreTrainedModel
    moments: dict[str, Moments]
    """AdamW's state by parameter name; empty: no state (a fresh optimizer)."""
    step: int
    flops: float
    """Student training FLOPs after `step` steps, every earlier stage at its own size."""
    lr_scales: Mapping[str, float] = field(default_factory=dict)


def held_lm_loss(model: PreTrainedModel, batch: Mapping[str, torch.Tensor]) -> float:
    """The model's LM loss on `batch` in eval mode, on the model's device; a mixture of experts without its router
    auxiliary loss (which the LM loss of the dense model it grew from never had)."""
    device = next(model.parameters()).device
    inputs = {key: value.to(device) for key, value in batch.items()}
    if adds_router_loss(model):
        inputs["output_router_logits"] = False
    model.eval()
    with torch.no_grad():
        return float(model(**inputs).loss)


def grow_state(
    state: TrainingState,
    options: GrowthOptions,
    held: Mapping[str, torch.Tensor],
    *,
    optimizer_state: Literal["map", "reset"] = "map",
    lr_scaling: Literal["none", "growth"] = "none",
    tokenizer: Any = None,
    what: str = "growth",
) -> tuple[TrainingState, dict[str, Any]]:
    """The training state after growing by `options` at `state.step`, and the growth's record (plan, verification,
    held losses, LR scales). Refused in one line, changing nothing, when the growth is not exact."""
    small, step = state.model, state.step
    device = next(small.parameters()).device
    growth = grow(small, options, tokenizer=tokenizer)
    if not growth.report.passed:
        raise KinheritError(
            f"{what} at step {step} is not exact (max |Δlogits| {growth.report.max_deviation:.2e}); nothing was changed"
        )
    grown = growth.model.float().to(device)
    before, after = held_lm_loss(small, held), held_lm_loss(grown, held)
    if growth.plan.exact_claimed and abs(after - before) > LOSS_TOLERANCE:
        raise KinheritError(
            f"{what} at step {step} changed the held-out loss by {after - before:+.2e} "
            f"(> {LOSS_TOLERANCE:.0e}); nothing was changed"
        )
    source_params = {n: p.detach() for n, p in small.named_parameters()}
    grown_names = {n for n, _ in grown.named_parameters()}
    scales = lr_scales(growth.plan, source_params, grown_names, state.lr_scales) if lr_scaling == "growth" else {}
    moments = map_adam_state(growth.plan, state.moments, source_params, grown_names) if optimizer_state == "map" else {}
    record = {
        "at_step": step,
        "flops_at_step": state.flops,
        "options": options.model_dump(exclude_defaults=True),
        "optimizer_state": optimizer_state,
        "lr_scaling": lr_scaling,
        "loss_before": before,
        "loss_after": after,
        "params_before": sum(p.numel() for p in small.parameters()),
        "params_after": sum(p.numel() for p in grown.parameters()),
        "lr_scales": scales,
        "plan": growth.plan.to_dict(),
        "report": growth.report.to_dict(),
    }
    return TrainingState(grown, moments, step, state.flops, scales), record


def named_moments(checkpoint: Path, device: torch.device | str = "cpu") -> dict[str, Moments]:
    """The optimizer state of a checkpoint by parameter name (empty when it has none, or none a growth can map);
    refused when the checkpoint holds state it cannot name."""
    grown = checkpoint / GROWN_OPTIMIZER
    if grown.is_file():  # a growth's checkpoint that was not trained from yet
        return torch.load(grown, map_location=device, weights_only=True)["state"]
    saved_path = checkpoint / OPTIMIZER_NAME
    if not saved_path.is_file():
        return {}
    saved = torch.load(saved_path, map_location=device, weights_only=True)
    if not saved["state"]:
        return {}
    if not (checkpoint / OPTIMIZER_PARAMS).is_file():
        raise KinheritError(
            f"{checkpoint} has no {OPTIMIZER_PARAMS} (written by an earlier kinherit), so its optimizer "
            "state cannot be mapped through the growth; resume from an earlier checkpoint, or set "
            "optimizer_state: reset for this stage"
        )
    names = read_json(checkpoint / OPTIMIZER_PARAMS)
    return {names[index]: state for index, state in saved["state"].items()}


def write_grown_checkpoint(state: TrainingState, checkpoint: Path, stage: int) -> None:
    """Replace `checkpoint` (the step-b one of the previous stage), in one rename, by one holding the grown state of
    stage `stage`: the model, its optimizer state by name, and every other file of `checkpoint` carried unchanged."""
    staging = checkpoint.parent / STAGING / checkpoint.name
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    state.model.save_pretrained(staging)
    moments = {name: {k: v.detach().cpu() for k, v in m.items()} for name, m in state.moments.items()}
    torch.save({"state": moments}, staging / GROWN_OPTIMIZER)
    for item in checkpoint.iterdir():
        if (
            item.is_file()
            and item.name not in _REPLACED
            and not (staging / item.name).exists()
            and not _weights(item.name)
        ):
            shutil.copy2(item, staging / item.name)
    write_json(staging / STAGE_STATE, {"stage": stage})
    replace_dir(staging, checkpoint)


def _weights(name: str) -> bool:
    """A model weight file of the smaller model (replaced by the grown model's own)."""
    return name.endswith((".safetensors", ".safetensors.index.json")) or name.startswith("pytorch_model")

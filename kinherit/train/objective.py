"""Training objectives: the loss is a component the trainer is given (torchtitan style).

An objective turns one training micro-batch into `(loss, outputs, terms)`: the loss to back-propagate, the
model outputs, and the named terms to log (each averaged over the micro-batches since the last log).
`loss_is_scaled_for_ga` says how the loss relates to the optimizer step, for every objective alike:

    None   the model normalised it by the step's item count (`num_items_in_batch`): a share of the step mean;
    False  it is the micro-batch mean, and the trainer divides it by the gradient-accumulation steps.

Objectives that run a teacher add its forward FLOPs (`extra_flops`) and may keep state that a checkpoint
must carry (`state_dict` / `load_state_dict`, written as `objective.json`). Evaluation always uses the
model's own loss. The knowledge-inheritance objective (`kinherit.inherit.objective`) implements this
protocol without importing from here.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class Objective(Protocol):
    loss_is_scaled_for_ga: bool | None
    extra_columns: tuple[str, ...]
    """Dataset fields the objective consumes besides the model's inputs (kept by the Trainer's column filter)."""

    def training_loss(self, trainer: Any, model: torch.nn.Module, inputs: dict[str, torch.Tensor],
                      num_items_in_batch: Any) -> tuple[torch.Tensor, Any, dict[str, torch.Tensor]]:
        """(loss, outputs, terms) of one training micro-batch; `trainer` gives `model_loss`, `state`, `accelerator`."""

    def extra_flops(self, step: int, tokens_per_step: int) -> dict[str, float]:
        """FLOPs beyond the student's training (e.g. `teacher_flops`) in the first `step` optimizer steps."""

    def on_log(self, trainer: Any, terms: dict[str, float]) -> None:
        """Called with the logged term means (equal on every process) after each training log."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold to resume the objective exactly (JSON-serialisable)."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ModelLoss:
    """The model's own loss: causal/masked LM in pre-training, cross-entropy in sequence classification.

    `normalised_by_step=True` passes `num_items_in_batch` to the model (transformers' GA-exact token
    normalisation, used for LM pre-training); `False` keeps the micro-batch mean (classification).
    `term` additionally logs the loss under that name (e.g. `ce`).
    """

    extra_columns: tuple[str, ...] = ()

    def __init__(self, normalised_by_step: bool = True, term: str | None = None):
        self.normalised_by_step, self.term = normalised_by_step, term
        self.loss_is_scaled_for_ga: bool | None = None if normalised_by_step else False

    def training_loss(self, trainer: Any, model: torch.nn.Module, inputs: dict[str, torch.Tensor],
                      num_items_in_batch: Any) -> tuple[torch.Tensor, Any, dict[str, torch.Tensor]]:
        loss, outputs = trainer.model_loss(model, inputs, num_items_in_batch if self.normalised_by_step else None)
        return loss, outputs, ({self.term: loss} if self.term else {})

    def extra_flops(self, step: int, tokens_per_step: int) -> dict[str, float]:
        return {}

    def on_log(self, trainer: Any, terms: dict[str, float]) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

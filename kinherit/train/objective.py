"""Training objectives: the loss is a component the trainer is given (torchtitan style).

The trainer runs the model and computes its own loss L (router auxiliary loss excluded, see `KinheritTrainer`);
an objective turns it into the loss to back-propagate and the named terms to log:

    loss, terms = objective.loss(step, L, outputs, batch, extras)

`extras` are the batch fields the objective consumes besides the model's inputs (`extra_columns`, e.g. cached
teacher targets); the trainer takes them out of the batch before the forward pass. `normalised_by_step` says
how L is computed, for every objective alike:

    True   normalised by the step's item count (`num_items_in_batch`): a share of the step's mean;
    False  the micro-batch mean, which the trainer divides by the gradient-accumulation steps.

Objectives that run a teacher add its forward FLOPs (`extra_flops`), learn where to run it (`start`), and may
keep state that a checkpoint must carry (`state_dict` / `load_state_dict`, written as `objective.json`).
Evaluation always uses the model's own loss; the objective observes each evaluation's metrics (`on_evaluate`,
e.g. to stop inheritance once the student's validation loss reaches the teacher's), with the sums over the split
of what it computes per block of every evaluation batch (`eval_terms`), and may add metrics to it. The
knowledge-inheritance objective (`kinherit.inherit.objective`) implements this protocol without importing from here.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class Objective(Protocol):
    normalised_by_step: bool
    extra_columns: tuple[str, ...]
    """Dataset fields the objective consumes besides the model's inputs (kept by the Trainer's column filter)."""

    def start(self, accelerator: Any) -> None:
        """Called once before training with the run's accelerator (device and precision for a teacher)."""

    def loss(
        self, step: int, lm: torch.Tensor, outputs: Any, batch: dict[str, torch.Tensor], extras: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(loss, terms) of one training micro-batch at optimizer step `step` from the model's loss `lm`."""

    def extra_flops(self, step: int, tokens_per_step: int) -> dict[str, float]:
        """FLOPs beyond the student's training (e.g. `teacher_flops`) in the first `step` optimizer steps."""

    def eval_terms(
        self, outputs: Any, batch: dict[str, torch.Tensor], extras: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Per-block values (B,) of one evaluation batch, summed over the split and passed to `on_evaluate`."""

    def on_evaluate(self, step: int, metrics: dict[str, float]) -> dict[str, float]:
        """Called with each evaluation's metrics (`eval_loss`, ...) and the `eval_terms` sums (equal on every
        process) after `step` optimizer steps, before they are logged; returns metrics to add (`eval_<name>`,
        logged as `val_<name>`)."""

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

    def start(self, accelerator: Any) -> None:
        return None

    def loss(
        self, step: int, lm: torch.Tensor, outputs: Any, batch: dict[str, torch.Tensor], extras: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return lm, ({self.term: lm} if self.term else {})

    def extra_flops(self, step: int, tokens_per_step: int) -> dict[str, float]:
        return {}

    def eval_terms(
        self, outputs: Any, batch: dict[str, torch.Tensor], extras: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        return {}

    def on_evaluate(self, step: int, metrics: dict[str, float]) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

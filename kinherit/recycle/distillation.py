"""Distillation-based recycling (Qin et al. 2023, Recyclable Tuning): the old fine-tuned classifier teaches
the new one on the task data, as a training objective of `KinheritTrainer`.

    L = (1 − α)·CE(y, p_s) + α·τ²·KL(p_t(·/τ) ‖ p_s(·/τ))

Both terms are micro-batch means (the trainer divides them by the gradient-accumulation steps); they are
logged as `ce` and `kd`. The teacher runs on every training step, so its forward FLOPs are counted as
`teacher_flops` = step × tokens per step × teacher forward FLOPs per token.
"""

from __future__ import annotations

from typing import Any

import torch

from kinherit.kd.losses import kd_loss, mix
from kinherit.metrics.flops import FlopsPerToken
from kinherit.train.objective import ModelLoss


def distill_loss(
    student_logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor, alpha: float, temperature: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(1 − α)·CE(y, softmax(s)) + α·τ²·KL(softmax(t/τ) ‖ softmax(s/τ)), batch means; also the terms.
    student_logits, teacher_logits (B, C); labels (B,)."""
    ce = torch.nn.functional.cross_entropy(student_logits, labels)
    kd = kd_loss(student_logits, teacher_logits, temperature)
    return mix(ce, kd, alpha), {"ce": ce, "kd": kd}


class ClassificationDistillation(ModelLoss):
    """CE on the labels mixed with KD from a frozen classifier teacher (already on the training device)."""

    def __init__(self, teacher: torch.nn.Module, alpha: float, temperature: float, teacher_flops: FlopsPerToken):
        super().__init__(normalised_by_step=False)
        self.teacher, self.alpha, self.temperature, self.teacher_flops = teacher, alpha, temperature, teacher_flops

    def loss(
        self, step: int, lm: torch.Tensor, outputs: Any, batch: dict[str, torch.Tensor], extras: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():
            teacher_logits = self.teacher(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits  # (B, C)
        return distill_loss(outputs.logits, batch["labels"], teacher_logits, self.alpha, self.temperature)

    def extra_flops(self, step: int, tokens_per_step: int) -> dict[str, float]:
        return {"teacher_flops": step * tokens_per_step * self.teacher_flops.forward}

"""The teacher's loss on the validation split: what a stateful schedule (`teacher.schedule: auto`) compares the
student's evaluations with.

Neither model trained on the validation split, so the two losses compare like with like (`schedules.AutoStop`).
The teacher's is computed once per run, exactly as the trainer evaluates the student (transformers'
`evaluation_loop` on one process): the validation blocks in order, in batches of the evaluation batch size,
each batch's mean LM loss weighted by its number of blocks,

    L_val(teacher) = Σ_b |b|·L_LM(b) / Σ_b |b|

under the training precision's autocast. Its cost, one teacher forward over the split, is counted in
`teacher_flops`: blocks × seq_len × forward FLOPs per token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from kinherit.kd.losses import lm_loss
from kinherit.inherit.sources import OnlineModel
from kinherit.metrics.flops import FlopsPerToken


@dataclass
class TeacherValidation:
    """The validation split as the trainer evaluates it, and the teacher's loss on it once `measure`d."""

    val: Dataset
    batch_size: int
    masked: bool
    flops_per_token: FlopsPerToken
    loss: float | None = None

    @property
    def flops(self) -> float:
        """One teacher forward over every validation block."""
        return len(self.val) * self.flops_per_token.seq_len * self.flops_per_token.forward

    def measure(self, teacher: OnlineModel) -> float:
        """L_val(teacher), computed on the first call and kept (a checkpoint carries it, `loss`)."""
        if self.loss is None:
            total = 0.0
            for start in range(0, len(self.val), self.batch_size):
                items = [self.val[i] for i in range(start, min(start + self.batch_size, len(self.val)))]
                input_ids = torch.stack([item["input_ids"] for item in items]).to(teacher.placement.device or "cpu")  # (B, T)
                labels = torch.stack([item["labels"] for item in items]).to(teacher.placement.device or "cpu")  # (B, T)
                total += len(items) * float(lm_loss(teacher(input_ids=input_ids), labels, self.masked))
            self.loss = total / len(self.val)
        return self.loss

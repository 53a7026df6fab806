"""The teacher's loss on the validation split: what a stateful schedule (`teacher.schedule: auto`) compares the
student's evaluations with.

Neither model trained on the validation split, so the two losses compare like with like (`schedules.AutoStop`).
The teacher's is computed once per run, over the validation blocks in order, in batches of the evaluation batch
size, under the training precision's autocast; its cost, one teacher forward over the split, is counted in
`teacher_flops`: blocks × (the teacher's tokens per block) × forward FLOPs per token.

- Same tokenizer (`TeacherValidation`): exactly as the trainer evaluates the student (transformers'
  `evaluation_loop` on one process), each batch's mean LM loss weighted by its number of blocks,

      L_val(teacher) = Σ_b |b|·L_LM(b) / Σ_b |b|,      compared with the evaluation's `eval_loss`.

- Another tokenizer (`SpanValidation`): per-token losses of two tokenizations are not comparable, so both
  models are scored on the same text, the aligned spans c of the validation blocks (`kinherit.kd.alignment`):
  the mean negative log-likelihood per span,

      L_val = −Σ_c ℓ(c) / |{c}|      for the teacher (ℓ_t, once) and the student (ℓ_s, at every evaluation).

  The student's comes from the evaluation's own forward pass (`batch_terms`: per block, its span NLL sum and
  span count; the trainer sums them over the split, padding duplicates dropped, `KinheritTrainer`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset
from transformers import default_data_collator

from kinherit.inherit.sources import OnlineModel
from kinherit.kd.cross_tokenizer.alm import span_log_likelihoods
from kinherit.kd.cross_tokenizer.targets import teacher_span_log_likelihoods
from kinherit.kd.losses import lm_loss
from kinherit.metrics.flops import FlopsPerToken


@dataclass
class _HeldOut:
    """The validation split as the trainer evaluates it, and the teacher's loss on it once `measure`d."""

    val: Dataset
    batch_size: int
    flops_per_token: FlopsPerToken
    """The teacher's, at its own tokens per block."""
    loss: float | None = None

    @property
    def flops(self) -> float:
        """One teacher forward over every validation block."""
        return len(self.val) * self.flops_per_token.seq_len * self.flops_per_token.forward

    def _batches(self, teacher: OnlineModel) -> Iterator[dict[str, Tensor]]:
        """The validation blocks in order, collated in evaluation batches on the teacher's device."""
        device = teacher.placement.device or "cpu"
        for start in range(0, len(self.val), self.batch_size):
            items = [self.val[i] for i in range(start, min(start + self.batch_size, len(self.val)))]
            yield {key: value.to(device) for key, value in default_data_collator(items).items()}


@dataclass
class TeacherValidation(_HeldOut):
    """Same tokenizer: the teacher's validation LM loss against the evaluation's `eval_loss`."""

    masked: bool = False

    def measure(self, teacher: OnlineModel) -> float:
        """L_val(teacher), computed on the first call and kept (a checkpoint carries it, `loss`)."""
        if self.loss is None:
            total = 0.0
            for batch in self._batches(teacher):
                logits = teacher(input_ids=batch["input_ids"])  # (B, T, V)
                total += len(batch["input_ids"]) * float(lm_loss(logits, batch["labels"], self.masked))
            self.loss = total / len(self.val)
        return self.loss

    def batch_terms(self, logits: Tensor, batch: dict[str, Tensor], extras: dict[str, Tensor]) -> dict[str, Tensor]:
        """Nothing beyond the evaluation's own loss."""
        return {}

    def student_loss(self, metrics: dict[str, float]) -> float | None:
        return metrics.get("eval_loss")

    def logged(self, student: float) -> dict[str, float]:
        return {"eval_teacher_loss": self.loss}


@dataclass
class SpanValidation(_HeldOut):
    """Another tokenizer: mean NLL per aligned span of the validation split (`val` carries the alignment,
    `CrossTokenizerBlocks`), the teacher's against the student's."""

    def measure(self, teacher: OnlineModel) -> float:
        """−Σ_c ℓ_t(c) / |{c}| over the validation spans, computed on the first call and kept (`loss`)."""
        if self.loss is None:
            nll, spans = 0.0, 0
            for batch in self._batches(teacher):
                logits = teacher(
                    input_ids=batch["xt_teacher_ids"], attention_mask=batch["xt_teacher_mask"]
                )  # (B, L, V_t)
                at = batch["xt_span_start"] >= 0  # (B, T)
                nll -= float(teacher_span_log_likelihoods(logits, batch)[at].double().sum())
                spans += int(at.sum())
            self.loss = nll / max(spans, 1)
        return self.loss

    def batch_terms(self, logits: Tensor, batch: dict[str, Tensor], extras: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per block (B,): the student's NLL summed over its aligned spans, and their number."""
        start = extras["xt_span_start"]  # (B, T)
        at = start >= 0
        ll = span_log_likelihoods(logits, batch["input_ids"], start).double()  # (B, T)
        return {"span_nll_sum": -torch.where(at, ll, 0.0).sum(1), "spans": at.sum(1).double()}

    def student_loss(self, metrics: dict[str, Any]) -> float | None:
        if "spans" not in metrics:
            return None
        return metrics["span_nll_sum"] / max(metrics["spans"], 1.0)

    def logged(self, student: float) -> dict[str, float]:
        return {"eval_student_span_nll": student, "eval_teacher_span_nll": self.loss}


Validation = TeacherValidation | SpanValidation

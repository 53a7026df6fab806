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

Same tokenizer, the split also gets a free baseline (`unigram_loss`): the loss of the training split's token
frequencies, what a student learns on its own in its first steps. `auto` credits the student with it, so a
teacher that knows no more than token frequencies is never used (`schedules.AutoStop`). Across tokenizers there
is no such baseline (the student's span NLL is not compared with one).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from transformers import default_data_collator

from kinherit.data.dataset import IGNORE_INDEX, PackedBlocks
from kinherit.inherit.sources import OnlineModel
from kinherit.kd.cross_tokenizer.alm import span_log_likelihoods
from kinherit.kd.cross_tokenizer.targets import teacher_span_log_likelihoods
from kinherit.kd.losses import lm_loss
from kinherit.metrics.flops import FlopsPerToken

UNIGRAM_SAMPLE = 2**24
"""Training tokens `unigram_loss` counts at most: that many, in 64 evenly spaced runs, on a larger split."""


def unigram_loss(train: PackedBlocks, val: Dataset, vocab: int, masked: bool) -> float:
    """L_val(unigram): the mean validation NLL of the training split's token frequencies (add-½ smoothing),

        p(v) = (n_v + ½) / (N + V/2),      L = −mean log p(label) over the positions the LM loss scores

    (causal: every label but each block's first; masked: labels ≠ −100). At most `UNIGRAM_SAMPLE` training
    tokens are counted."""
    tokens = np.memmap(train.path, dtype=train.dtype, mode="r")
    runs = 1 if len(tokens) <= UNIGRAM_SAMPLE else 64
    starts = np.linspace(0, len(tokens) - UNIGRAM_SAMPLE // runs, runs).astype(np.int64)
    counts = sum(np.bincount(tokens[s : s + UNIGRAM_SAMPLE // runs], minlength=vocab)[:vocab] for s in starts)
    log_p = np.log(counts + 0.5) - np.log(counts.sum() + vocab / 2)
    scored = np.zeros(vocab, dtype=np.int64)  # how often each token is a scored validation label
    for i in range(len(val)):
        labels = val[i]["labels"] if masked else val[i]["labels"][1:]  # (T,) or (T − 1,)
        scored += np.bincount(labels[labels != IGNORE_INDEX].numpy(), minlength=vocab)[:vocab]
    return float(-(scored * log_p).sum() / scored.sum())


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
    """Same tokenizer: the teacher's validation LM loss against the evaluation's `eval_loss`, the student credited
    with the unigram baseline's (`floor`, `unigram_loss`)."""

    masked: bool = False
    floor: float | None = None
    """L_val(unigram)."""

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
        """min(eval_loss, L_val(unigram)): a student knows the token frequencies after its first steps anyway."""
        loss = metrics.get("eval_loss")
        return loss if loss is None or self.floor is None else min(loss, self.floor)

    def logged(self, student: float) -> dict[str, float]:
        return {"eval_teacher_loss": self.loss} | ({} if self.floor is None else {"eval_unigram_loss": self.floor})


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

"""Teacher sources: everything about the teacher of a knowledge-inheritance run, and nothing else.

A source owns
- the extra batch columns the teacher needs (`extra_columns`: cached targets, or the alignment to another
  tokenizer) and the dataset that serves them (`dataset`, built by `prepare_inheritance`);
- the teacher's lifetime: an online teacher is loaded on the first step that needs it, placed on the
  training device in eval mode and frozen, run under the accelerator's autocast, and released (`release`)
  when α stays 0; a cache never loads a model;
- the teacher's forward FLOPs (`flops`) on the steps where it ran;
- `outputs(batch, extras)`: what the loss needs from the teacher for one micro-batch (`TeacherOutputs`).

The loss (`kinherit.inherit.objective.inheritance_loss`) is a pure function of those outputs.
"""

from __future__ import annotations

import gc
from contextlib import AbstractContextManager, nullcontext
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from kinherit.inherit.cache import CACHE_KEYS
from kinherit.inherit.cross_tokenizer.targets import Targets
from kinherit.inherit.cross_tokenizer.term import CrossTokenizerTerm
from kinherit.inherit.losses import TopK
from kinherit.inherit.teacher import TeacherSpec
from kinherit.metrics.flops import FlopsPerToken


@dataclass(frozen=True)
class TeacherOutputs:
    """The teacher's contribution to one micro-batch: its targets (logits (B, T, V) cut to the shared vocabulary,
    top-K, or cross-tokenizer `Targets`)."""

    targets: Tensor | TopK | Targets


class OnlineModel:
    """A teacher model loaded on first use and released on request (owned by one source)."""

    def __init__(self, spec: TeacherSpec):
        self.spec = spec
        self.model: torch.nn.Module | None = None
        self.device: torch.device | None = None
        self.autocast: Callable[[], AbstractContextManager] = nullcontext

    def place(self, device: torch.device, autocast: Callable[[], AbstractContextManager]) -> None:
        """Where and under which autocast the teacher runs (the training device and precision)."""
        self.device, self.autocast = device, autocast

    def __call__(self, **inputs: Tensor) -> Tensor:
        """The teacher's logits, without gradient."""
        if self.model is None:
            self.model = self.spec.load().to(self.device) if self.device is not None else self.spec.load()
        with torch.no_grad(), self.autocast():
            return self.model(**inputs).logits

    def release(self) -> None:
        if self.model is None:
            return
        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


class _OwnsModel:
    """A source's online model, if it has one: placed on the training device, released when no longer needed."""

    model: OnlineModel | None

    def place(self, device: torch.device, autocast: Callable[[], AbstractContextManager]) -> None:
        if self.model is not None:
            self.model.place(device, autocast)

    def release(self) -> None:
        if self.model is not None:
            self.model.release()


class SameTokenizerTeacher(_OwnsModel):
    """A teacher with the student's tokenizer: an online model, or a top-K cache whose rows arrive in the batch.

    Online: logits (B, T, V) cut to the shared vocabulary (top-K when `top_k`).
    FLOPs: teacher steps × tokens per step × forward FLOPs/token.
    """

    def __init__(self, model: OnlineModel | None, flops_per_token: FlopsPerToken, shared_vocab: int, top_k: int | None):
        self.model, self.flops_per_token, self.shared_vocab, self.top_k = model, flops_per_token, shared_vocab, top_k
        self.extra_columns: tuple[str, ...] = () if model is not None else CACHE_KEYS

    def outputs(self, batch: dict[str, Tensor], extras: dict[str, Tensor]) -> TeacherOutputs:
        if self.model is None:
            return TeacherOutputs(TopK(extras[CACHE_KEYS[0]], extras[CACHE_KEYS[1]]))
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"))
        logits = logits[..., : self.shared_vocab]  # (B, T, V)
        return TeacherOutputs(TopK.from_logits(logits, self.top_k) if self.top_k else logits)

    def flops(self, teacher_steps: int, tokens_per_step: int) -> float:
        return teacher_steps * tokens_per_step * self.flops_per_token.forward



class CrossTokenizerTeacher(_OwnsModel):
    """A teacher with another tokenizer (`teacher.cross_tokenizer`): it reads its own tokens of the same text
    (from the alignment columns), or its targets come from a cross-tokenizer cache."""

    def __init__(self, term: CrossTokenizerTerm, model: OnlineModel | None, flops_per_token: FlopsPerToken,
                 top_k: int | None):
        self.term, self.model, self.flops_per_token, self.top_k = term, model, flops_per_token, top_k
        self.extra_columns = term.extra_columns

    def outputs(self, batch: dict[str, Tensor], extras: dict[str, Tensor]) -> TeacherOutputs:
        return TeacherOutputs(self.term.targets(self.model, extras, self.top_k))

    def flops(self, teacher_steps: int, tokens_per_step: int) -> float:
        return self.term.teacher_flops(teacher_steps, tokens_per_step, self.flops_per_token)



TeacherSource = SameTokenizerTeacher | CrossTokenizerTeacher


def teacher_device(accelerator: Any) -> tuple[torch.device, Callable[[], AbstractContextManager]]:
    """The training device and the accelerator's autocast (mixed precision), as a teacher should run."""
    return accelerator.device, accelerator.autocast

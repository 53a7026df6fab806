"""Teacher sources: everything about the teacher of a knowledge-inheritance run, and nothing else.

A source owns
- the extra batch columns the teacher needs (`extra_columns`: cached targets, or the alignment to another
  tokenizer) and the dataset that serves them (`dataset`, built by `prepare_inheritance`);
- the teacher's lifetime: an online teacher is loaded on the first step that needs it, placed on the
  training device in eval mode and frozen, run under the accelerator's autocast, sharded like the student
  under FSDP2 (`shard_like_student`), and released (`release`) when α stays 0; a cache never loads a model;
- the teacher's forward FLOPs (`flops`) on the steps where it ran;
- `outputs(batch, extras)`: what the loss needs from the teacher for one micro-batch (`TeacherOutputs`).

The loss (`kinherit.inherit.objective.inheritance_loss`) is a pure function of those outputs.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor

from kinherit.inherit.cache import CACHE_KEYS
from kinherit.inherit.cross_tokenizer.term import CrossTokenizerTerm
from kinherit.inherit.teacher import TeacherSpec
from kinherit.kd.cross_tokenizer.targets import Targets
from kinherit.kd.losses import TopK
from kinherit.metrics.flops import FlopsPerToken


@dataclass(frozen=True)
class TeacherOutputs:
    """The teacher's contribution to one micro-batch: its targets (logits (B, T, V) cut to the shared vocabulary,
    top-K, or cross-tokenizer `Targets`)."""

    targets: Tensor | TopK | Targets


Shard = Callable[[torch.nn.Module], torch.nn.Module]
"""Turns a loaded teacher into the form it runs in on every process (`shard_like_student` under FSDP2)."""


@dataclass(frozen=True)
class Placement:
    """Where and how the teacher runs: the training device, the accelerator's autocast, and `shard` when the
    student is sharded (None: every process holds the whole teacher)."""

    device: torch.device | None = None
    autocast: Callable[[], AbstractContextManager] = nullcontext
    shard: Shard | None = None


class OnlineModel:
    """A teacher model loaded on first use and released on request (owned by one source)."""

    def __init__(self, spec: TeacherSpec):
        self.spec = spec
        self.model: torch.nn.Module | None = None
        self.placement = Placement()

    def place(self, placement: Placement) -> None:
        self.placement = placement

    def __call__(self, **inputs: Tensor) -> Tensor:
        """The teacher's logits, without gradient. Sharded, every process must call it on the same steps (it
        gathers each block's parameters from all of them): α and the auto stop are the same on every process."""
        if self.model is None:
            model = self.spec.load()
            model = model.to(self.placement.device) if self.placement.device is not None else model
            self.model = self.placement.shard(model) if self.placement.shard is not None else model
        with torch.no_grad(), self.placement.autocast():
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

    def place(self, placement: Placement) -> None:
        if self.model is not None:
            self.model.place(placement)

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

    def __init__(
        self, term: CrossTokenizerTerm, model: OnlineModel | None, flops_per_token: FlopsPerToken, top_k: int | None
    ):
        self.term, self.model, self.flops_per_token, self.top_k = term, model, flops_per_token, top_k
        self.extra_columns = term.extra_columns

    def outputs(self, batch: dict[str, Tensor], extras: dict[str, Tensor]) -> TeacherOutputs:
        return TeacherOutputs(self.term.targets(self.model, extras, self.top_k))

    def flops(self, teacher_steps: int, tokens_per_step: int) -> float:
        return self.term.teacher_flops(teacher_steps, tokens_per_step, self.flops_per_token)


TeacherSource = SameTokenizerTeacher | CrossTokenizerTeacher


def teacher_placement(accelerator: Any) -> Placement:
    """The training device, the accelerator's autocast (mixed precision) and, under FSDP2, the student's sharding."""
    if not getattr(accelerator, "is_fsdp2", False):
        return Placement(accelerator.device, accelerator.autocast)
    mesh = getattr(accelerator, "torch_device_mesh", None)
    if mesh is not None:  # the student's FSDP dimensions, as accelerate's `fsdp2_prepare_model` takes them
        mesh = mesh[tuple(accelerator.parallelism_config.fsdp_dim_names)]
    return Placement(accelerator.device, accelerator.autocast, partial(shard_like_student, mesh=mesh))


def shard_like_student(model: torch.nn.Module, mesh: Any = None) -> torch.nn.Module:
    """FSDP2 (`fully_shard`) over the student's device mesh (None: all processes), as accelerate shards the student:
    each transformer block (a class in the model's `_no_split_modules`) is one unit, the rest of the model the
    root unit. A process keeps 1/world of each parameter; a forward gathers one block at a time and frees it after
    (`reshard_after_forward`), so the whole teacher is never resident. No gradients: frozen, run under no_grad."""
    from torch.distributed.fsdp import fully_shard

    blocks = set(getattr(model, "_no_split_modules", None) or ())
    for module in list(model.modules())[1:]:
        if type(module).__name__ in blocks:
            fully_shard(module, mesh=mesh, reshard_after_forward=True)
    fully_shard(model, mesh=mesh, reshard_after_forward=True)
    return model

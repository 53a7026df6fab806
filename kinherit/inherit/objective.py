"""The knowledge-inheritance objective: the student's loss inherits knowledge from a teacher (Qin et al., NAACL 2022).

    L_t = (1 − α_t)·L_LM + α_t·τ²·KL(p_teacher(·/τ) ‖ p_student(·/τ))

Three parts, each owning one thing:
- `inheritance_loss`, a pure function of the student's outputs, the batch, the teacher's outputs and α_t;
- a teacher source (`kinherit.inherit.sources`): the teacher's batch columns, lifetime and FLOPs;
- `kd.schedules.Alpha`: α_t, a stateful schedule's state (auto's stop), and the state a checkpoint carries.
`KnowledgeInheritance` joins them as the `kinherit.train.objective.Objective` that `KinheritTrainer` is given.

L_LM is the model's own causal- or masked-LM loss (a micro-batch mean, router auxiliary loss excluded); for
masked LM the KD term covers the masked positions only (labels ≠ −100), as in the paper. A stateful schedule
(`teacher.schedule: auto`) observes the student against the teacher on the validation split (the teacher's
loss there, `held_out`, is computed once and logged as `val_teacher_loss`, or across tokenizers as
`val_teacher_span_nll`; the student's comes from each evaluation, `on_evaluate`) and, same tokenizer, on every
training micro-batch the teacher runs on (both LM losses, the teacher's from its KD logits): auto weighs KD by
their gaps and drops α to 0 for good once the student caught up on the validation split. With
`teacher.cross_tokenizer`, the KD term is that method's loss over the aligned text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils import DistributedType
from torch import Tensor
from torch.utils.data import Dataset
from transformers import PreTrainedModel

from kinherit.config import RunConfig
from kinherit.data.dataset import IGNORE_INDEX, PackedBlocks
from kinherit.data.packing import PackedCorpus
from kinherit.errors import KinheritError
from kinherit.hf_folder import task_of
from kinherit.inherit.cache import CachedTeacherBlocks, open_cache
from kinherit.inherit.cross_tokenizer.blocks import CrossTokenizerBlocks, check_text
from kinherit.inherit.cross_tokenizer.term import prepare_cross_tokenizer
from kinherit.inherit.held_out import SpanValidation, TeacherValidation, Validation, unigram_loss
from kinherit.inherit.sources import (
    CrossTokenizerTeacher,
    OnlineModel,
    SameTokenizerTeacher,
    TeacherOutputs,
    TeacherSource,
    teacher_placement,
)
from kinherit.inherit.teacher import inspect_teacher
from kinherit.kd.cross_tokenizer import METHODS
from kinherit.kd.losses import DEFAULT_KD_LOSS, kd_loss, lm_loss, mix
from kinherit.kd.schedules import SCHEDULES, Alpha, resolve_horizon

_SHARDED = (DistributedType.DEEPSPEED, DistributedType.FSDP)


@dataclass(frozen=True)
class KDSettings:
    """How the KD term is computed: τ, the shared vocabulary, masked-LM positions, the cross-tokenizer method."""

    temperature: float
    shared_vocab: int
    masked: bool
    """Masked-LM student: KD on masked positions only."""
    cross_tokenizer: str | None = None
    loss: str = DEFAULT_KD_LOSS
    """teacher.loss, a `losses.KD_LOSSES` name (same-tokenizer KD)."""


def kd_term(student_logits: Tensor, batch: dict[str, Tensor], teacher: TeacherOutputs, settings: KDSettings) -> Tensor:
    """The KD term: the cross-tokenizer method's loss over the aligned text, or τ²·D(p_teacher ‖ p_student)."""
    if settings.cross_tokenizer is not None:
        method = METHODS.lookup(settings.cross_tokenizer)
        return method.loss(student_logits, batch["input_ids"], teacher.targets, settings.temperature)
    mask = batch["labels"] != IGNORE_INDEX if settings.masked else None  # (B, T)
    return kd_loss(
        student_logits[..., : settings.shared_vocab], teacher.targets, settings.temperature, mask, loss=settings.loss
    )


def inheritance_loss(
    lm: Tensor,
    student_logits: Tensor,
    batch: dict[str, Tensor],
    teacher: TeacherOutputs | None,
    alpha: Alpha,
    step: int,
    settings: KDSettings,
) -> tuple[Tensor, dict[str, Tensor]]:
    """(1 − w)·L_LM + w·KD with w = α_t (times a stateful schedule's factor, `Alpha.weight`), and the terms to
    log. `teacher` is None exactly when α_t = 0 (the teacher need not run); the loss is then L_LM."""
    terms: dict[str, Tensor] = {"lm_loss": lm}
    if teacher is None:
        return lm, {**terms, "alpha": torch.zeros((), device=lm.device)}
    kd = kd_term(student_logits, batch, teacher, settings)
    weight = torch.as_tensor(alpha.weight(step), device=lm.device, dtype=lm.dtype)
    return mix(lm, kd, weight), {**terms, "kd_loss": kd, "alpha": weight}


class KnowledgeInheritance:
    """The KI objective: α from `alpha`, teacher outputs from `source`, the loss from `inheritance_loss`;
    with `validation` (a stateful schedule, online teacher), the teacher's validation loss it compares with."""

    normalised_by_step = False  # both terms are micro-batch means; the trainer divides them by the accumulation steps

    def __init__(self, alpha: Alpha, source: TeacherSource, settings: KDSettings, validation: Validation | None = None):
        self.alpha, self.source, self.settings, self.validation = alpha, source, settings, validation
        self.extra_columns = source.extra_columns
        self.accelerator: Any = None

    def start(self, accelerator: Any) -> None:
        """Place an online teacher where the student trains, sharded like it under FSDP2; refused under DeepSpeed
        and FSDP1, where it would be replicated unsharded on every device."""
        sharded = accelerator.distributed_type in _SHARDED and not getattr(accelerator, "is_fsdp2", False)
        if self.source.model is not None and sharded:
            raise KinheritError(
                f"an online teacher is not supported under {accelerator.distributed_type.value} without FSDP2: it "
                "would be replicated unsharded on every device; use FSDP2 (train.fsdp_config: {fsdp_version: 2}) "
                "or build an offline cache (kinherit cache-teacher) and set teacher.cache"
            )
        self.accelerator = accelerator
        self.source.place(teacher_placement(accelerator))
        if self.validation is not None and self.source.model is not None:
            self.validation.measure(self.source.model)

    def loss(
        self, step: int, lm: Tensor, outputs: Any, batch: dict[str, Tensor], extras: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        teacher = self.source.outputs(batch, extras) if self.alpha(step) > 0 else None
        observed = self._observe_batch(lm, teacher, batch)
        loss, terms = inheritance_loss(lm, outputs.logits, batch, teacher, self.alpha, step, self.settings)
        if observed is not None:
            terms["teacher_lm_loss"] = observed
        if self.alpha.done(step):
            self.source.release()
        return loss, terms

    def _observe_batch(self, lm: Tensor, teacher: TeacherOutputs | None, batch: dict[str, Tensor]) -> Tensor | None:
        """A stateful schedule's batch evidence, where the teacher ran with full logits and the same tokenizer (a
        top-K teacher has no LM loss): the student's LM loss, credited with the unigram baseline, and the teacher's,
        the cross-entropy of its KD logits (returned, logged as `teacher_lm_loss`); both the mean over processes, so
        every process keeps the same state and a checkpoint (the main process's) resumes each exactly. Every process
        runs the teacher on the same steps (α_t and the switch are common), so the reduction is collective."""
        if (
            not isinstance(self.validation, TeacherValidation)
            or teacher is None
            or not isinstance(teacher.targets, Tensor)
        ):
            return None
        with torch.no_grad():
            teacher_lm = lm_loss(teacher.targets, batch["labels"], self.settings.masked)
        floor = self.validation.floor
        losses = torch.stack([lm.detach() if floor is None else lm.detach().clamp(max=floor), teacher_lm])
        if self.accelerator is not None and self.accelerator.num_processes > 1:
            losses = self.accelerator.reduce(losses, reduction="mean")
        self.alpha.observe_batch(losses[0], losses[1])
        return losses[1]

    def extra_flops(self, step: int, tokens_per_step: int) -> dict[str, float]:
        """Teacher forward FLOPs on the steps where it ran (plus its one pass over the validation split for a
        stateful schedule, counted from step 0 on), as `teacher_flops`."""
        held_out = self.validation.flops if self.validation is not None else 0.0
        return {"teacher_flops": self.source.flops(self.alpha.teacher_steps(step), tokens_per_step) + held_out}

    def eval_terms(self, outputs: Any, batch: dict[str, Tensor], extras: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per-block sums of one evaluation batch a stateful schedule needs beyond `eval_loss` (across tokenizers: the
        student's span NLL and span count)."""
        return self.validation.batch_terms(outputs.logits, batch, extras) if self.validation is not None else {}

    def on_evaluate(self, step: int, metrics: dict[str, float]) -> dict[str, float]:
        """A stateful schedule's evidence from the student's validation loss; logs both models' (`eval_teacher_loss`, or
        `eval_student_span_nll` and `eval_teacher_span_nll` across tokenizers)."""
        if self.validation is None or self.validation.loss is None:
            return {}
        student = self.validation.student_loss(metrics)
        if student is None:
            return {}
        self.alpha.observe_validation(step, student, self.validation.loss)
        return self.validation.logged(student)

    def state_dict(self) -> dict[str, Any]:
        held_out = {"teacher_val_loss": self.validation.loss} if self.validation is not None else {}
        return {**self.alpha.state_dict(), **held_out}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.alpha.load_state_dict(state)
        if self.validation is not None:
            self.validation.loss = state.get("teacher_val_loss")


def prepare_inheritance(
    config: RunConfig,
    corpus: PackedCorpus,
    tokenizer: Any,
    student: PreTrainedModel,
    train: PackedBlocks,
    max_steps: int,
    val: PackedBlocks,
) -> tuple[Dataset, Dataset, KnowledgeInheritance]:
    """The training and validation datasets (serving the teacher source's columns) and the KI objective; `val` is
    the split the trainer evaluates on (a stateful schedule's reference)."""
    cfg = config.teacher
    masked = task_of(student.config) == "masked"
    alpha = Alpha(SCHEDULES.lookup(cfg.schedule), cfg.alpha0, resolve_horizon(cfg.steps, max_steps))
    watches = alpha.state is not None  # the schedule observes the student against the teacher
    batch = config.train_args["per_device_eval_batch_size"]
    source: TeacherSource
    validation: Validation | None = None
    if cfg.cross_tokenizer is not None:
        aligned, term, spec, flops, top_k = prepare_cross_tokenizer(config, corpus, tokenizer, student, train)
        source = CrossTokenizerTeacher(term, OnlineModel(spec) if spec is not None else None, flops, top_k)
        if watches and isinstance(aligned, CrossTokenizerBlocks):  # online teacher: both scored on the validation spans
            check_text(aligned.aligner, val)
            val = CrossTokenizerBlocks(val, aligned.aligner)
            validation = SpanValidation(val, batch, flops)
        train = aligned
    elif cfg.cache is not None:
        cache = open_cache(cfg.cache, corpus, config.data.seq_len, cfg.top_k)
        top_k = cfg.top_k or cache.top_k
        source = SameTokenizerTeacher(None, cache.teacher_flops, len(tokenizer), top_k)
        train = CachedTeacherBlocks(train, cache, top_k)
    else:
        spec = inspect_teacher(cfg.path, tokenizer, config.data.seq_len, task_of(student.config), cfg.top_k)
        source = SameTokenizerTeacher(OnlineModel(spec), spec.flops, len(tokenizer), cfg.top_k)
        if watches:
            floor = unigram_loss(train, val, len(tokenizer), masked)
            validation = TeacherValidation(val, batch, spec.flops, masked=masked, floor=floor)
    settings = KDSettings(cfg.temperature, len(tokenizer), masked, cfg.cross_tokenizer, loss=cfg.loss)
    return train, val, KnowledgeInheritance(alpha, source, settings, validation)

"""The knowledge-inheritance objective: the student's loss inherits knowledge from a teacher (Qin et al., NAACL 2022).

    L_t = (1 − α_t)·L_LM + α_t·τ²·KL(p_teacher(·/τ) ‖ p_student(·/τ))

L_LM is the model's own causal- or masked-LM loss; for masked LM the KD term covers the masked positions
only (labels ≠ −100), as in the paper. The teacher is either a model (loaded on the first step that needs it,
prepared by the accelerator in eval mode, frozen, and released as soon as α stays 0) or an offline top-K
cache whose rows arrive in the batch (`cache.CACHE_KEYS`). Both terms are per-micro-batch means, so the
Trainer divides them by the gradient-accumulation steps. With `teacher.steps: auto`, the teacher's own LM
loss on the same batch (`teacher_lm_loss`, from the logits it computes anyway) is logged too, and
`schedules.AutoStop` sets α to 0 for good once the student's LM loss has caught up with it. With
`teacher.cross_tokenizer`, the KD term is `cross_tokenizer.term.CrossTokenizerTerm`'s (the teacher reads its
own tokens of the same text) and everything else here is unchanged. `KinheritTrainer` (kinherit.train) is given this
objective; this module does not import the trainer.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils import DistributedType
from torch.utils.data import Dataset
from transformers import PreTrainedModel

from kinherit.config import RunConfig
from kinherit.data.dataset import IGNORE_INDEX, PackedBlocks
from kinherit.data.packing import PackedCorpus
from kinherit.errors import KinheritError
from kinherit.inherit.cache import CACHE_KEYS, CachedTeacherBlocks, open_cache
from kinherit.inherit.cross_tokenizer.term import CrossTokenizerTerm, prepare_cross_tokenizer
from kinherit.inherit.losses import DEFAULT_KD_LOSS, TopK, kd_loss
from kinherit.inherit.schedules import AUTO, SCHEDULES, AutoStop, Schedule, gap_weight, resolve_horizon
from kinherit.inherit.teacher import TeacherSpec, inspect_teacher
from kinherit.metrics.flops import FlopsPerToken
from kinherit.hf_folder import task_of


@dataclass(frozen=True)
class KIPlan:
    """Everything the loss needs besides the models: α schedule, τ, top-K, the shared vocabulary."""

    schedule: Schedule
    alpha0: float
    horizon: int
    """T, in optimizer steps."""
    temperature: float
    top_k: int | None
    shared_vocab: int
    masked: bool
    """Masked-LM student: KD on masked positions only."""
    teacher_flops: FlopsPerToken
    auto: bool = False
    """`teacher.steps: auto`: T = max_steps, and `AutoStop` may end inheritance earlier."""
    loss: str = DEFAULT_KD_LOSS
    """teacher.loss, a `losses.KD_LOSSES` name."""

    def alpha(self, step: int) -> float:
        return self.schedule.alpha(step, self.alpha0, self.horizon)

    def teacher_steps(self, step: int) -> int:
        """Optimizer steps among the first `step` on which the teacher ran (α > 0)."""
        return self.schedule.teacher_steps(step, self.alpha0, self.horizon)

    def teacher_done(self, step: int) -> bool:
        """α is 0 at `step` and every later step."""
        return self.alpha0 == 0 or (self.schedule.ends and step >= self.horizon)


_SHARDED = (DistributedType.DEEPSPEED, DistributedType.FSDP)


def lm_loss(logits: torch.Tensor, labels: torch.Tensor, masked: bool) -> torch.Tensor:
    """Mean cross-entropy over the positions with a label (≠ −100): masked LM predicts labels in place,
    causal LM predicts the label of the next position. logits (B, T, V), labels (B, T)."""
    if not masked:
        logits, labels = logits[:, :-1], labels[:, 1:]  # (B, T−1, V), (B, T−1)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)


class KnowledgeInheritance:
    """The KI objective (see the module docstring); `teacher=None` means the batches carry cached top-K targets.

    Implements `kinherit.train.objective.Objective`; `trainer` is the `KinheritTrainer` running it.
    """

    loss_is_scaled_for_ga = False  # both terms are micro-batch means
    extra_columns = CACHE_KEYS

    def __init__(self, ki: KIPlan, teacher: TeacherSpec | None, cross: CrossTokenizerTerm | None = None):
        self.ki, self.teacher_spec, self.cross = ki, teacher, cross
        self.teacher: torch.nn.Module | None = None
        self._accelerator: Any = None
        self.auto = AutoStop() if ki.auto else None
        if cross is not None:
            self.extra_columns = cross.extra_columns

    # ---- α and the teacher's steps, with the auto stop ----
    def alpha(self, step: int) -> float:
        """α_t: the schedule's, or 0 once inheritance stopped itself."""
        return 0.0 if self.auto is not None and self.auto.stopped(step) else self.ki.alpha(step)

    def teacher_steps(self, step: int) -> int:
        """Optimizer steps among the first `step` on which the teacher ran (α > 0)."""
        ran = self.ki.teacher_steps(step)
        switch = self.auto.switch_step if self.auto is not None else None
        return ran if switch is None else min(ran, switch)

    def teacher_done(self, step: int) -> bool:
        """α is 0 at `step` and every later step."""
        return self.ki.teacher_done(step) or (self.auto is not None and self.auto.stopped(step))

    # ---- teacher lifetime ----
    def _online_teacher(self, accelerator: Any) -> torch.nn.Module:
        if self.teacher is None:
            if accelerator.distributed_type in _SHARDED:
                raise KinheritError(
                    f"an online teacher is not supported under {accelerator.distributed_type.value}: it would be "
                    "replicated unsharded on every device; build an offline cache (kinherit cache-teacher) and set teacher.cache"
                )
            self.teacher = accelerator.prepare_model(self.teacher_spec.load(), evaluation_mode=True)
            self._accelerator = accelerator
        return self.teacher

    def release_teacher(self) -> None:
        """Drop every reference to the teacher and free its memory."""
        if self.teacher is None:
            return
        self._accelerator._models = [m for m in self._accelerator._models if m is not self.teacher]
        self.teacher = self._accelerator = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _teacher_targets(self, accelerator: Any, inputs: dict[str, torch.Tensor], cached: TopK | None
                         ) -> tuple[torch.Tensor | TopK, torch.Tensor | None]:
        """Teacher logits (B, T, V) or top-K (B, T, k) for this batch, vocabulary cut to the shared size; and,
        with the auto stop, the teacher's LM loss on the batch."""
        if cached is not None:
            return cached, None
        teacher = self._online_teacher(accelerator)
        with torch.no_grad():
            logits = teacher(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask")).logits
            teacher_lm = lm_loss(logits, inputs["labels"], self.ki.masked) if self.auto is not None else None
        logits = logits[..., : self.ki.shared_vocab]  # (B, T, V)
        return (TopK.from_logits(logits, self.ki.top_k) if self.ki.top_k else logits), teacher_lm

    # ---- loss and accounting ----
    def training_loss(self, trainer: Any, model: torch.nn.Module, inputs: dict[str, torch.Tensor],
                      num_items_in_batch: Any) -> tuple[torch.Tensor, Any, dict[str, torch.Tensor]]:
        if self.cross is not None:
            extra = self.cross.pop(inputs)  # alignment or cached cross-tokenizer targets
        else:
            extra = TopK(inputs.pop(CACHE_KEYS[0]), inputs.pop(CACHE_KEYS[1])) if CACHE_KEYS[0] in inputs else None
        step = trainer.state.global_step
        alpha = self.alpha(step)
        lm_loss, outputs = trainer.model_loss(model, inputs)  # micro-batch mean
        weight = torch.tensor(alpha, device=lm_loss.device)
        terms = {"lm_loss": lm_loss}
        if alpha > 0:
            kd, gap_terms, gap = self._kd_term(trainer, inputs, outputs, lm_loss, extra)
            terms["kd_loss"] = kd
            terms.update(gap_terms)
            if gap is not None:  # auto: the KD weight follows the teacher/student gap (no host sync)
                weight = weight * gap_weight(*gap)
            loss = (1 - weight) * lm_loss + weight * kd
        else:
            loss = lm_loss
        terms["alpha"] = weight
        if self.teacher_done(step):
            self.release_teacher()
        return loss, outputs, terms

    def _kd_term(self, trainer: Any, inputs: dict[str, torch.Tensor], outputs: Any, lm_loss: torch.Tensor, extra: Any
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None]:
        """The KD term, the gap terms to log, and with `steps: auto` the (student, teacher) losses the gap compares:
        LM losses on the same tokens, or per-span NLLs of the same text for a teacher with another tokenizer."""
        if self.cross is not None:
            kd, gap_terms = self.cross(lambda: self._online_teacher(trainer.accelerator), outputs.logits, inputs["input_ids"],
                                       extra, self.ki.temperature, self.ki.top_k, gap=self.auto is not None)
            gap = (gap_terms["student_span_nll"], gap_terms["teacher_span_nll"]) if gap_terms else None
            return kd, gap_terms, gap
        mask = inputs["labels"] != IGNORE_INDEX if self.ki.masked else None  # (B, T)
        student = outputs.logits[..., : self.ki.shared_vocab]  # (B, T, V)
        targets, teacher_lm = self._teacher_targets(trainer.accelerator, inputs, extra)
        kd = kd_loss(student, targets, self.ki.temperature, mask, loss=self.ki.loss)
        if teacher_lm is None:
            return kd, {}, None
        return kd, {"teacher_lm_loss": teacher_lm}, (lm_loss, teacher_lm)

    def extra_flops(self, step: int, tokens_per_step: int) -> dict[str, float]:
        """Teacher forward FLOPs on the steps where it ran, as `teacher_flops`."""
        if self.cross is not None:
            return {"teacher_flops": self.cross.teacher_flops(self.teacher_steps(step), tokens_per_step, self.ki.teacher_flops)}
        return {"teacher_flops": self.teacher_steps(step) * tokens_per_step * self.ki.teacher_flops.forward}

    def on_log(self, trainer: Any, terms: dict[str, float]) -> None:
        """The auto stop's decision, from the logged means (equal on every process)."""
        if self.auto is not None and "teacher_lm_loss" in terms:
            self.auto.observe(trainer.state.global_step, terms["lm_loss"], terms["teacher_lm_loss"])
        if self.auto is not None and "teacher_span_nll" in terms:
            self.auto.observe(trainer.state.global_step, terms["student_span_nll"], terms["teacher_span_nll"])

    def state_dict(self) -> dict[str, Any]:
        return {"switch_step": self.auto.switch_step} if self.auto is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.auto is not None:
            self.auto.switch_step = state.get("switch_step")


def prepare_inheritance(
    config: RunConfig, corpus: PackedCorpus, tokenizer: Any, student: PreTrainedModel, train: PackedBlocks, max_steps: int
) -> tuple[Dataset, KnowledgeInheritance]:
    """The training dataset (with cached teacher targets when `teacher.cache` is set) and the KI objective."""
    cfg = config.teacher
    masked = task_of(student.config) == "masked"
    cross = None
    if cfg.cross_tokenizer is not None:
        train, cross, teacher, flops, top_k = prepare_cross_tokenizer(config, corpus, tokenizer, student, train)
    elif cfg.cache is not None:
        cache = open_cache(cfg.cache, corpus, config.data.seq_len, cfg.top_k)
        top_k, teacher, flops = cfg.top_k or cache.top_k, None, cache.teacher_flops
        train = CachedTeacherBlocks(train, cache, top_k)
    else:
        teacher = inspect_teacher(cfg.path, tokenizer, config.data.seq_len, task_of(student.config), cfg.top_k)
        top_k, flops = cfg.top_k, teacher.flops
    plan = KIPlan(
        schedule=SCHEDULES.lookup(cfg.schedule), alpha0=cfg.alpha0, horizon=resolve_horizon(cfg.steps, max_steps),
        temperature=cfg.temperature, top_k=top_k, shared_vocab=len(tokenizer), masked=masked, teacher_flops=flops,
        auto=cfg.steps == AUTO, loss=cfg.loss,
    )
    return train, KnowledgeInheritance(plan, teacher, cross)

"""`KITrainer`: `KinheritTrainer` whose loss inherits knowledge from a teacher (Qin et al., NAACL 2022).

    L_t = (1 − α_t)·L_LM + α_t·τ²·KL(p_teacher(·/τ) ‖ p_student(·/τ))

L_LM is the model's own causal- or masked-LM loss; for masked LM the KD term covers the masked positions
only (labels ≠ −100), as in the paper. The teacher is either a model (loaded on the first step that needs it,
prepared by the accelerator in eval mode, frozen, and released as soon as α stays 0) or an offline top-K
cache whose rows arrive in the batch (`cache.CACHE_KEYS`). Both terms are per-micro-batch means, so the
Trainer divides them by the gradient-accumulation steps.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils import DistributedType
from torch.utils.data import Dataset
from transformers import PreTrainedModel, Trainer

from kinherit.config import RunConfig
from kinherit.data.dataset import IGNORE_INDEX, PackedBlocks
from kinherit.data.packing import PackedCorpus
from kinherit.errors import KinheritError
from kinherit.inherit.cache import CACHE_KEYS, CachedTeacherBlocks, open_cache
from kinherit.inherit.losses import TopK, kd_loss
from kinherit.inherit.schedules import SCHEDULES, Schedule, resolve_horizon
from kinherit.inherit.teacher import TeacherSpec, inspect_teacher
from kinherit.metrics.flops import FlopsPerToken
from kinherit.hf_folder import task_of
from kinherit.train.trainer import KinheritTrainer


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

    def alpha(self, step: int) -> float:
        return self.schedule.alpha(step, self.alpha0, self.horizon)

    def teacher_steps(self, step: int) -> int:
        """Optimizer steps among the first `step` on which the teacher ran (α > 0)."""
        return self.schedule.teacher_steps(step, self.alpha0, self.horizon)

    def teacher_done(self, step: int) -> bool:
        """α is 0 at `step` and every later step."""
        return self.alpha0 == 0 or (self.schedule.ends and step >= self.horizon)


_SHARDED = (DistributedType.DEEPSPEED, DistributedType.FSDP)


class KITrainer(KinheritTrainer):
    """See the module docstring. `teacher=None` means the train dataset carries cached top-K targets."""

    def __init__(self, *args: Any, ki: KIPlan, teacher: TeacherSpec | None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.ki, self.teacher_spec = ki, teacher
        self.teacher: torch.nn.Module | None = None
        self.loss_is_scaled_for_ga = False  # both terms are micro-batch means

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        self._signature_columns += [key for key in CACHE_KEYS if key not in self._signature_columns]

    # ---- teacher lifetime ----
    def _online_teacher(self) -> torch.nn.Module:
        if self.teacher is None:
            if self.accelerator.distributed_type in _SHARDED:
                raise KinheritError(
                    f"an online teacher is not supported under {self.accelerator.distributed_type.value}: it would be "
                    "replicated unsharded on every device; build an offline cache (kinherit cache-teacher) and set teacher.cache"
                )
            self.teacher = self.accelerator.prepare_model(self.teacher_spec.load(), evaluation_mode=True)
        return self.teacher

    def release_teacher(self) -> None:
        """Drop every reference to the teacher and free its memory."""
        if self.teacher is None:
            return
        self.accelerator._models = [m for m in self.accelerator._models if m is not self.teacher]
        self.teacher = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _teacher_targets(self, inputs: dict[str, torch.Tensor], cached: TopK | None) -> torch.Tensor | TopK:
        """Teacher logits (B, T, V) or top-K (B, T, k) for this batch, vocabulary cut to the shared size."""
        if cached is not None:
            return cached
        teacher = self._online_teacher()
        with torch.no_grad():
            logits = teacher(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask")).logits
        logits = logits[..., : self.ki.shared_vocab]  # (B, T, V)
        return TopK.from_logits(logits, self.ki.top_k) if self.ki.top_k else logits

    # ---- loss and accounting ----
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
        cached = TopK(inputs.pop(CACHE_KEYS[0]), inputs.pop(CACHE_KEYS[1])) if CACHE_KEYS[0] in inputs else None
        if not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        step = self.state.global_step
        alpha = self.ki.alpha(step)
        lm_loss, outputs = Trainer.compute_loss(self, model, inputs, return_outputs=True)  # micro-batch mean
        terms = {"lm_loss": lm_loss, "alpha": torch.tensor(alpha, device=lm_loss.device)}
        if alpha > 0:
            mask = inputs["labels"] != IGNORE_INDEX if self.ki.masked else None  # (B, T)
            student = outputs.logits[..., : self.ki.shared_vocab]  # (B, T, V)
            terms["kd_loss"] = kd_loss(student, self._teacher_targets(inputs, cached), self.ki.temperature, mask)
            loss = (1 - alpha) * lm_loss + alpha * terms["kd_loss"]
        else:
            loss = lm_loss
        if self.ki.teacher_done(step):
            self.release_teacher()
        self.record_terms(loss=loss, **terms)
        return (loss, outputs) if return_outputs else loss

    def accounting(self, step: int) -> dict[str, float]:
        """Student training FLOPs plus teacher forward FLOPs on the steps where it ran (also as `teacher_flops`)."""
        counts = super().accounting(step)
        teacher = self.ki.teacher_steps(step) * self.tokens_per_step * self.ki.teacher_flops.forward
        return {**counts, "flops": counts["flops"] + teacher, "teacher_flops": teacher}


def prepare_inheritance(
    config: RunConfig, corpus: PackedCorpus, tokenizer: Any, student: PreTrainedModel, train: PackedBlocks, max_steps: int
) -> tuple[Dataset, dict[str, Any]]:
    """The training dataset (with cached teacher targets when `teacher.cache` is set) and `KITrainer` kwargs."""
    cfg = config.teacher
    masked = task_of(student.config) == "masked"
    if cfg.cache is not None:
        cache = open_cache(cfg.cache, corpus, config.data.seq_len, cfg.top_k)
        top_k, teacher, flops = cfg.top_k or cache.top_k, None, cache.teacher_flops
        train = CachedTeacherBlocks(train, cache, top_k)
    else:
        teacher = inspect_teacher(cfg.path, tokenizer, config.data.seq_len, task_of(student.config), cfg.top_k)
        top_k, flops = cfg.top_k, teacher.flops
    plan = KIPlan(
        schedule=SCHEDULES.lookup(cfg.schedule), alpha0=cfg.alpha0, horizon=resolve_horizon(cfg.steps, max_steps),
        temperature=cfg.temperature, top_k=top_k, shared_vocab=len(tokenizer), masked=masked, teacher_flops=flops,
    )
    return train, {"ki": plan, "teacher": teacher}

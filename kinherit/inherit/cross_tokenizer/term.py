"""The KD term of knowledge inheritance against a teacher with another tokenizer, and its setup.

`CrossTokenizerTerm` holds what the cross-tokenizer teacher source (`kinherit.inherit.sources`) needs: the
batch columns, the targets from the teacher's logits, and the teacher's FLOPs; the loss itself is the method's
(`kinherit.inherit.objective.kd_term`); α, the auto stop, teacher release and resume are unchanged. Accounting: the
teacher reads its own tokens, `teacher_len` per block (the block's text re-tokenized, right-padded or cut to that
length: the compute is dense), so a step where the teacher runs costs sequences × teacher_len × its forward FLOPs per
token at that length.

With `teacher.schedule: auto` the two LM losses are compared on the same text of the validation split: the mean
negative log-likelihood per aligned span (`kinherit.inherit.held_out.SpanValidation`), since per-token losses of
two tokenizations are not comparable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

from kinherit.config import RunConfig
from kinherit.data.dataset import PackedBlocks
from kinherit.data.packing import PackedCorpus
from kinherit.errors import KinheritError
from kinherit.hf_folder import task_of
from kinherit.inherit.cross_tokenizer.blocks import CrossTokenizerBlocks, build_aligner
from kinherit.inherit.cross_tokenizer.cache import CachedCrossTokenizerBlocks, open_cross_cache
from kinherit.inherit.teacher import TeacherSpec, _meta_model, inspect_teacher
from kinherit.kd.cross_tokenizer import METHODS, Method
from kinherit.kd.cross_tokenizer.targets import (
    CACHED_KEYS,
    ONLINE_KEYS,
    SharedVocab,
    Targets,
    cached_targets,
    online_targets,
)
from kinherit.metrics.flops import FlopsPerToken, flops_per_token


@dataclass
class CrossTokenizerTerm:
    method: Method
    shared: SharedVocab
    teacher_len: int
    seq_len: int
    cached: bool

    @property
    def extra_columns(self) -> tuple[str, ...]:
        return CACHED_KEYS if self.cached else ONLINE_KEYS

    def pop(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Take the alignment (or cached targets) out of a batch, leaving the model's inputs."""
        return {key: inputs.pop(key) for key in self.extra_columns if key in inputs}

    def targets(self, teacher: Callable[..., Tensor] | None, batch: dict[str, Tensor], top_k: int | None) -> Targets:
        """This batch's targets: cached, or from `teacher` (its logits (B, L, V_t), without gradient) on its own
        tokens."""
        if self.cached:
            return cached_targets(batch, self.shared)
        logits = teacher(input_ids=batch["xt_teacher_ids"], attention_mask=batch["xt_teacher_mask"])  # (B, L, V_t)
        return online_targets(logits, batch, self.shared, top_k, buckets=self.method.bucketed)

    def teacher_flops(self, teacher_steps: int, tokens_per_step: int, flops: FlopsPerToken) -> int:
        """Forward FLOPs of the teacher on its own tokens over `teacher_steps` steps."""
        return teacher_steps * (tokens_per_step // self.seq_len) * self.teacher_len * flops.forward


def prepare_cross_tokenizer(
    config: RunConfig, corpus: PackedCorpus, tokenizer: Any, student: Any, train: PackedBlocks
) -> tuple[Dataset, CrossTokenizerTerm, TeacherSpec | None, FlopsPerToken, int | None]:
    """(training dataset, term, online teacher or None, teacher FLOPs per token at teacher_len, top-K)."""
    cfg, seq_len = config.teacher, config.data.seq_len
    if task_of(student.config) != "causal":
        raise KinheritError(
            "teacher.cross_tokenizer supports causal-LM students only: a masked LM's corrupted input has no text "
            "to align"
        )
    if cfg.cache is not None:
        cache = open_cross_cache(cfg.cache, corpus, seq_len, cfg.cross_tokenizer, cfg.top_k)
        shared = cache.shared_vocab(tokenizer)
        term = CrossTokenizerTerm(METHODS.lookup(cfg.cross_tokenizer), shared, cache.teacher_len, seq_len, cached=True)
        return (
            CachedCrossTokenizerBlocks(train, cache, cfg.top_k or cache.top_k),
            term,
            None,
            cache.teacher_flops,
            cfg.top_k or cache.top_k,
        )
    spec = inspect_teacher(cfg.path, tokenizer, seq_len, "causal", cross_tokenizer=True)
    aligner, shared, length = build_aligner(spec, tokenizer, train)
    if cfg.top_k is not None and cfg.top_k > len(shared):
        raise KinheritError(
            f"teacher.top_k {cfg.top_k} exceeds the {len(shared)} tokens the two vocabularies share; choose K ≤ "
            f"{len(shared)}"
        )
    term = CrossTokenizerTerm(METHODS.lookup(cfg.cross_tokenizer), shared, length, seq_len, cached=False)
    return (
        CrossTokenizerBlocks(train, aligner),
        term,
        spec,
        flops_per_token(_meta_model(spec.config), length),
        cfg.top_k,
    )

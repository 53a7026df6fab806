"""Teacher targets for cross-tokenizer KI, per student row, from an online teacher or a cache.

On a block of T student tokens (alignment: `kinherit.kd.alignment`), the teacher contributes:

    span_start[i], teacher_ll[i]   on a row i ending an aligned span: its first student row a, and the
                                    teacher's log-likelihood of the span's text,
                                    ℓ_t = Σ_{j ∈ span} log p_t(y_j | y_<j)  (its tokens j in the block);
                                    span_start = −1 elsewhere
    top-K at boundaries             on a row i where student token i and teacher token j end at the same
                                    place: the teacher's next-token distribution at j over the shared
                                    vocabulary S (renormalised over S, τ = 1), its K most likely, as
                                    student ids; `at_boundary` marks those rows

The shared vocabulary S holds every string that both vocabularies have a token for, once, and the two
separators (`SharedVocab`); a model's probability of σ ∈ S sums all of its ids that spell σ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from kinherit.data.tokenizer import separator_id
from kinherit.errors import KinheritError
from kinherit.kd.alignment import Aligner
from kinherit.kd.losses import TopK, lm_loss

ONLINE_KEYS = ("xt_teacher_ids", "xt_teacher_mask", "xt_span_start", "xt_span_teacher", "xt_boundary")
"""Batch fields of the online dataset (the alignment), consumed by the objective."""
CACHED_KEYS = ("xt_span_start", "xt_teacher_ll", "xt_at_boundary", "xt_log_probs", "xt_indices")
"""Batch fields of the cached dataset (the targets themselves)."""


def longest_shared_prefix(table: list[bytes | None], shared: dict[bytes, int], separator: tuple[int, int]) -> Tensor:
    """For every token of `table`, the student id of the longest shared token that is a prefix of its bytes
    (its bucket); −1 when none is (a special token); the separator (id, student id) maps to the student's."""
    longest = max(map(len, shared), default=0)
    out = torch.full((len(table),), -1, dtype=torch.long)
    for index, data in enumerate(table):
        if data is not None:
            for size in range(min(len(data), longest), 0, -1):
                if (hit := shared.get(data[:size])) is not None:
                    out[index] = hit
                    break
    out[separator[0]] = separator[1]
    return out


def _groups(table: list[bytes | None], position: dict[bytes, int], separator: tuple[int, int]) -> Tensor:
    """(len(table),) int64: the position in S of the string each token spells (−1: not shared); the
    separator (id, position) is its own entry."""
    out = torch.tensor([position.get(data, -1) if data is not None else -1 for data in table], dtype=torch.long)
    out[separator[0]] = separator[1]
    return out


@dataclass(frozen=True)
class SharedVocab:
    """S: the strings both vocabularies have a token for, one entry each, plus the two separators. In a
    byte-fallback vocabulary several ids spell the same bytes (`A` and `<0x41>`): each model's probability of
    a string σ ∈ S is the sum over all of its ids spelling σ (`grouped_logsumexp`), so every id counts once.
    Buckets: the longest shared string a token's bytes start with (`longest_shared_prefix`)."""

    student_ids: Tensor
    """(S,) int64: the lowest student id spelling each σ, its name in the targets (top-K indices)."""
    teacher_ids: Tensor
    """(S,) int64: the lowest teacher id spelling each σ."""
    student_group: Tensor
    """(V_s,) int64: the position in S of the string every student token spells (−1: not shared)."""
    student_bucket: Tensor
    """(V_s,) int64: student id of the bucket of every student token (−1: none)."""
    teacher_group: Tensor | None = None
    """(V_t,) int64: as student_group, for the teacher's tokens (online targets only)."""
    teacher_bucket: Tensor | None = None
    """(V_t,) int64: student id of the bucket of every teacher token (online targets only)."""

    @classmethod
    def of(cls, aligner: Aligner, student: Any, teacher: Any) -> SharedVocab:
        first: dict[bytes, int] = {}  # the teacher's lowest id per string
        for i, data in enumerate(aligner.teacher_bytes):
            if data is not None:
                first.setdefault(data, i)
        pairs: dict[bytes, tuple[int, int]] = {}  # σ → (lowest student id, lowest teacher id)
        for i, data in enumerate(aligner.student_bytes):
            if data is not None and data in first and data not in pairs:
                pairs[data] = (i, first[data])
        if not pairs:
            raise KinheritError(
                "the student's and the teacher's vocabularies share no token; use teacher.cross_tokenizer: alm"
            )
        separators = (separator_id(student), separator_id(teacher))
        student_ids, teacher_ids = zip(*sorted([*pairs.values(), separators]))
        position = {
            aligner.student_bytes[i]: k for k, i in enumerate(student_ids) if aligner.student_bytes[i] is not None
        }
        shared = {data: student_ids[k] for data, k in position.items()}
        at_separator = student_ids.index(separators[0])
        return cls(
            torch.tensor(student_ids),
            torch.tensor(teacher_ids),
            _groups(aligner.student_bytes, position, (separators[0], at_separator)),
            longest_shared_prefix(aligner.student_bytes, shared, (separators[0], separators[0])),
            _groups(aligner.teacher_bytes, position, (separators[1], at_separator)),
            longest_shared_prefix(aligner.teacher_bytes, shared, (separators[1], separators[0])),
        )

    @classmethod
    def stored(cls, pairs: list[list[int]], student_bytes: list[bytes | None], separator: int) -> SharedVocab:
        """The shared vocabulary of a cache (its id pairs), with the student's groups and buckets recomputed."""
        position = {student_bytes[i]: k for k, i in enumerate(pairs[0]) if student_bytes[i] is not None}
        shared = {data: pairs[0][k] for data, k in position.items()}
        return cls(
            torch.tensor(pairs[0]),
            torch.tensor(pairs[1]),
            _groups(student_bytes, position, (separator, pairs[0].index(separator))),
            longest_shared_prefix(student_bytes, shared, (separator, separator)),
        )

    def __len__(self) -> int:
        return len(self.student_ids)


def grouped_logsumexp(values: Tensor, group: Tensor, size: int) -> Tensor:
    """(..., size): log Σ_{v : group[v] = g} exp(values[..., v]) for every g < size, from values (..., V) and
    group (V,) (−1: left out). A group of one token is its value exactly."""
    member = (group >= 0).nonzero().squeeze(1)  # (M,)
    picked = values.index_select(-1, member)  # (..., M)
    index = group[member].expand_as(picked)
    top = (
        picked.new_full((*values.shape[:-1], size), float("-inf")).scatter_reduce(-1, index, picked, "amax").detach()
    )  # (..., size)
    sums = picked.new_zeros(top.shape).scatter_add(-1, index, (picked - top.gather(-1, index)).exp())
    return top + sums.log()


@dataclass(frozen=True)
class Targets:
    """The teacher's contribution to one batch, per student row (B, T) (see the module docstring)."""

    span_start: Tensor
    teacher_ll: Tensor
    at_boundary: Tensor
    top: TopK
    """(B, T, K), indices in student ids."""
    shared: SharedVocab


def token_log_likelihoods(logits: Tensor, ids: Tensor) -> Tensor:
    """log p(x_i | x_<i) for every position i ≥ 1 of (B, L) ids from causal logits (B, L, V); 0 at i = 0."""
    return -lm_loss(logits, ids, masked=False, reduction="none")  # (B, L)


def span_sums(values: Tensor, first: Tensor, last: Tensor) -> Tensor:
    """Σ values[b, first..last] per row (B, L) for index tensors first, last (B, T) (clamped where unused)."""
    cumulative = torch.cat([values.new_zeros(values.shape[0], 1), values.double().cumsum(1)], dim=1)  # (B, L+1)
    first, last = first.clamp(min=0), last.clamp(min=0)
    return (cumulative.gather(1, last + 1) - cumulative.gather(1, first)).to(values.dtype)  # (B, T)


def teacher_span_log_likelihoods(teacher_logits: Tensor, batch: dict[str, Tensor]) -> Tensor:
    """ℓ_t of the span ending on each student row (B, T), from the teacher's logits (B, L, V_t) on the batch's
    `xt_teacher_ids` (meaningful where `xt_span_start` ≥ 0)."""
    span_teacher = batch["xt_span_teacher"]  # (B, T, 2)
    return span_sums(
        token_log_likelihoods(teacher_logits, batch["xt_teacher_ids"]), span_teacher[..., 0], span_teacher[..., 1]
    )


def online_targets(
    teacher_logits: Tensor, batch: dict[str, Tensor], shared: SharedVocab, top_k: int | None, buckets: bool = False
) -> Targets:
    """Targets from the teacher's logits (B, L, V_t) on the batch's `xt_teacher_ids`. The next-token
    distribution at boundaries is over S: restricted to S and renormalised, or (`buckets`) the teacher's
    whole distribution summed into the buckets of `longest_shared_prefix`."""
    teacher_ll = teacher_span_log_likelihoods(teacher_logits, batch)  # (B, T)
    boundary = batch["xt_boundary"]  # (B, T)
    at = boundary.clamp(min=0).unsqueeze(-1).expand(-1, -1, teacher_logits.shape[-1])
    logits = teacher_logits.gather(1, at).float()  # (B, T, V_t): the teacher's prediction at each common boundary
    device = logits.device
    if buckets:
        bucket = shared.teacher_bucket.to(device)
        probs = logits.softmax(-1)[..., bucket >= 0]  # (B, T, V') tokens with a bucket
        summed = probs.new_zeros(*probs.shape[:-1], len(shared.student_bucket)).index_add_(
            -1, bucket[bucket >= 0], probs
        )  # (B, T, V_s)
        logits = summed[..., shared.student_ids.to(device)].clamp(min=1e-30).log()  # (B, T, S): log Q over the buckets
    else:
        logits = grouped_logsumexp(
            logits, shared.teacher_group.to(device), len(shared)
        )  # (B, T, S): every id of σ once
    top = TopK.from_logits(logits, top_k or len(shared))
    top = TopK(top.log_probs, shared.student_ids.to(device)[top.indices])
    return Targets(batch["xt_span_start"], teacher_ll, boundary >= 0, top, shared)


def cached_targets(batch: dict[str, Tensor], shared: SharedVocab) -> Targets:
    """Targets served by a cache (`cache.CachedCrossTokenizerBlocks`)."""
    return Targets(
        batch["xt_span_start"],
        batch["xt_teacher_ll"],
        batch["xt_at_boundary"].bool(),
        TopK(batch["xt_log_probs"], batch["xt_indices"]),
        shared,
    )

"""(c) KD over shared-prefix buckets at common boundaries: every token of either vocabulary counts for the
longest token of the shared vocabulary S that its bytes start with.

Let π(v) ∈ S be the longest shared token that is a prefix of token v's bytes (`targets.longest_shared_prefix`;
with byte-level BPEs every byte is shared, so every token has one). At a common boundary (same text before
both predictions; `kinherit.kd.alignment`) both next-token distributions are summed into these buckets,

    Q(σ) = Σ_{u ∈ V_t : π(u) = σ} softmax(t)_u        P(σ) = Σ_{v ∈ V_s : π(v) = σ} softmax(s / τ)_v
    KD_π = τ² · mean_{boundaries} Σ_σ q_σ · (log q_σ − log P(σ)),   q = softmax_K(log Q_K / τ)

(Q's top-K when teacher.top_k is set, renormalised over K like the token-level KD; τ = 1 gives Q exactly).
Unlike the plain shared-vocabulary KD (`shared_vocab`), a word that the two vocabularies split differently
lands in the same bucket on both sides as long as both tokenizers take the longest piece they have: the
student's "the" and the teacher's "th" (its vocabulary lacks "the", so it writes "th" + "e") both count
for "th" when only "th" is shared, and for "the" when "the" is. Each side's distribution stays a
distribution (the buckets partition the vocabulary), so no probability is renormalised away.
"""

from __future__ import annotations

from torch import Tensor

from kinherit.kd.cross_tokenizer.method import register_method
from kinherit.kd.cross_tokenizer.targets import Targets

FLOOR = 1e-30
"""log P(σ) is taken of max(P(σ), FLOOR): a bucket the student gives no mass at all stays finite."""


@register_method(
    "shared_prefix",
    boundary_targets="bucketed",
    reference="kinherit's own bucketing of the shared-vocabulary KD; its alignment of common boundaries follows "
    "Minixhofer, Vulić & Ponti 2025, https://arxiv.org/abs/2503.20083",
)
def shared_prefix_kd(student_logits: Tensor, input_ids: Tensor, targets: Targets, temperature: float) -> Tensor:
    """KD_π of the module docstring; `targets.top` holds the teacher's bucketed distribution as student ids of S."""
    rows = targets.at_boundary  # (B, T)
    n = int(rows.sum())
    if n == 0:
        return student_logits.sum() * 0.0
    bucket = targets.shared.student_bucket.to(student_logits.device)  # (V_s,)
    probs = (student_logits[rows][:, : len(bucket)].float() / temperature).softmax(-1)  # (n, V_s)
    has = bucket >= 0
    summed = probs.new_zeros(n, len(bucket)).index_add(-1, bucket[has], probs[:, has])  # (n, V_s): P on the bucket ids
    log_p = summed.gather(1, targets.top.indices[rows]).clamp(min=FLOOR).log()  # (n, K)
    log_q = (targets.top.log_probs[rows].float() / temperature).log_softmax(-1)  # (n, K)
    kl = (log_q.exp() * (log_q - log_p)).sum()
    return temperature**2 * kl / n

"""(b) Baseline: KD over the exactly shared vocabulary at common boundaries, renormalised.

At a common boundary (student token i and teacher token j end at the same place, so both next-token
predictions condition on the same text; see `kinherit.kd.alignment`), restrict both distributions
to the shared vocabulary S (the strings both vocabularies have a token for, plus the two separators) and
renormalise over S:

    q_S(σ) ∝ Σ_{u spells σ} exp(t_u / τ)      p_S(σ) ∝ Σ_{v spells σ} exp(s_v / τ)
    KD_S = τ² · mean_{boundaries} KL(q_S ‖ p_S)

(a sum of one term, softmax_S, unless byte fallback spells σ with two ids, e.g. `A` and `<0x41>`: each id
counts once)

with the teacher's top-K over S when teacher.top_k is set (renormalised over K, as in `losses`). The
student's mass outside S is ignored. Its known failure, measured in docs/results.md: where the two
vocabularies split text differently, a shared token (e.g. the teacher's "th") is the teacher's
likely next token but one the student's own tokenization never emits at that point (it writes "the"),
so KD_S pulls the student towards non-canonical tokens.
"""

from __future__ import annotations

from torch import Tensor

from kinherit.kd.cross_tokenizer.method import register_method
from kinherit.kd.cross_tokenizer.targets import Targets, grouped_logsumexp
from kinherit.kd.losses import TopK, kd_loss


@register_method(
    "shared_vocab",
    boundary_targets="restricted",
    reference="Wan et al. 2024, Knowledge Fusion of Large Language Models (FuseLLM; exact-match vocabulary alignment), https://arxiv.org/abs/2401.10491",
)
def shared_vocab_kd(student_logits: Tensor, input_ids: Tensor, targets: Targets, temperature: float) -> Tensor:
    """KD_S of the module docstring; `targets.top` holds the teacher's (top-K) distribution over S as student ids."""
    rows = targets.at_boundary  # (B, T)
    group = targets.shared.student_group.to(student_logits.device)  # (V_s,)
    student = grouped_logsumexp(
        student_logits[rows][:, : len(group)].float() / temperature, group, len(targets.shared)
    )  # (n, S)
    teacher = TopK(
        targets.top.log_probs[rows].float() / temperature, group[targets.top.indices[rows]]
    )  # (n, K), over S
    return temperature**2 * kd_loss(student, teacher, 1.0)  # the temperature is applied to both sides already

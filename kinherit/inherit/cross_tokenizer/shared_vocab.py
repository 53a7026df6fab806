"""(b) Baseline: KD over the exactly shared vocabulary at common boundaries, renormalised.

At a common boundary (student token i and teacher token j end at the same place, so both next-token
predictions condition on the same text; see `kinherit.inherit.alignment`), restrict both distributions
to the shared vocabulary S (token pairs spelling the same bytes, plus the two separators) and
renormalise over S:

    q_S = softmax_S(t_j / τ)      p_S = softmax_S(s_i / τ)
    KD_S = τ² · mean_{boundaries} KL(q_S ‖ p_S)

with the teacher's top-K over S when teacher.top_k is set (renormalised over K, as in `losses`). The
student's mass outside S is ignored. Its known failure, measured in the README: where the two
vocabularies split text differently, a shared token (e.g. the teacher's "th") is the teacher's
likely next token but one the student's own tokenization never emits at that point (it writes "the"),
so KD_S pulls the student towards non-canonical tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kinherit.inherit.cross_tokenizer.method import register_method
from kinherit.inherit.cross_tokenizer.targets import Targets
from kinherit.inherit.losses import kd_loss


@register_method("shared_vocab", boundary_targets="restricted",
                 reference="Wan et al. 2024, Knowledge Fusion of Large Language Models (FuseLLM; exact-match vocabulary alignment), https://arxiv.org/abs/2401.10491")
def shared_vocab_kd(student_logits: Tensor, input_ids: Tensor, targets: Targets, temperature: float) -> Tensor:
    """KD_S of the module docstring; `targets.top` holds the teacher's (top-K) distribution over S as student ids."""
    outside = torch.full(student_logits.shape[-1:], float("-inf"), device=student_logits.device, dtype=student_logits.dtype)
    outside[targets.shared.student_ids.to(student_logits.device)] = 0.0  # (V,): 0 on S, −∞ elsewhere
    return kd_loss(student_logits + outside, targets.top, temperature, targets.at_boundary)

"""(a) Approximate likelihood matching (ALM; Minixhofer, Vulić & Ponti 2025, https://arxiv.org/abs/2503.20083).

For every aligned span c (a span of text whose two ends are token boundaries in both tokenizations;
see `kinherit.kd.alignment`), the two models' log-likelihoods of the span's text,

    ℓ_s(c) = Σ_{i ∈ c} log p_s(x_i | x_<i)        ℓ_t(c) = Σ_{j ∈ c} log p_t(y_j | y_<j),

are read as the probabilities of a binary event, p = exp(ℓ_t/τ) and q = exp(ℓ_s/τ), and matched with
the binary KL divergence (ALM's binarised f-divergence with f = KL):

    ALM = τ · mean_c [ p·(log p − log q) + (1 − p)·(log(1 − p) − log(1 − q)) ]

log(1 − e^x) is computed stably (`log1mexp`), and ℓ/τ is capped at −1e-6 so that a span the model is
sure of stays finite. ∂/∂ℓ_s of one span's term is (q − p)/(1 − q) (times τ/τ): the student is pulled
towards the teacher's likelihood of the text, up when it is below and down when it is above. τ
(teacher.temperature) flattens both probabilities; for τ ≫ |ℓ| that gradient tends to ℓ_t/ℓ_s − 1, a
relative match of the two log-likelihoods on the scale of the LM loss (the factor τ plays the role of τ²
in token-level KD).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from kinherit.kd.cross_tokenizer.method import register_method
from kinherit.kd.cross_tokenizer.targets import Targets, span_sums, token_log_likelihoods

CAP = -1e-6
"""Upper bound of ℓ/τ: log(1 − e^0) would be −∞."""


def log1mexp(x: Tensor) -> Tensor:
    """log(1 − e^x) for x < 0, accurate on both sides of log ½ (Mächler 2012)."""
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def binarised_kl(teacher_ll: Tensor, student_ll: Tensor, temperature: float) -> Tensor:
    """KL(Bernoulli(e^{ℓ_t/τ}) ‖ Bernoulli(e^{ℓ_s/τ})) per span, elementwise."""
    a = (teacher_ll.double() / temperature).clamp(max=CAP)
    b = (student_ll.double() / temperature).clamp(max=CAP)
    p = a.exp()
    return (p * (a - b) + (1 - p) * (log1mexp(a) - log1mexp(b))).to(student_ll.dtype)


def span_log_likelihoods(student_logits: Tensor, input_ids: Tensor, span_start: Tensor) -> Tensor:
    """ℓ_s of the span ending on each row (B, T) (meaningful where span_start ≥ 0)."""
    rows = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)  # (B, T)
    return span_sums(token_log_likelihoods(student_logits, input_ids), span_start, rows)


@register_method(
    "alm",
    boundary_targets=None,
    reference="Minixhofer, Vulić & Ponti 2025, Universal Cross-Tokenizer Distillation via Approximate Likelihood "
    "Matching, https://arxiv.org/abs/2503.20083",
)
def alm_loss(student_logits: Tensor, input_ids: Tensor, targets: Targets, temperature: float) -> Tensor:
    """τ · mean over the batch's aligned spans of the binarised KL (module docstring); 0 without spans."""
    spans = targets.span_start >= 0  # (B, T)
    student_ll = span_log_likelihoods(student_logits, input_ids, targets.span_start)  # (B, T)
    per_span = binarised_kl(targets.teacher_ll[spans].float(), student_ll[spans], temperature)
    return temperature * per_span.sum() / max(int(spans.sum()), 1)

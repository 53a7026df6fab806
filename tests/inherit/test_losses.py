import math

import pytest
import torch

from kinherit.inherit.losses import TopK, kd_loss

TAU = 2.0
# teacher t/τ = [ln 2, 0, 0] → p_t = [1/2, 1/4, 1/4]; student s = 0 → p_s = [1/3, 1/3, 1/3]
TEACHER = torch.tensor([[2 * math.log(2), 0.0, 0.0]], dtype=torch.float64)
STUDENT = torch.zeros(1, 3, dtype=torch.float64)
KL_FULL = 0.5 * math.log(1.5) + 0.5 * math.log(0.75)  # Σ p_t·log(p_t/p_s)


def test_full_vocabulary_kd_is_tau_squared_kl():
    assert kd_loss(STUDENT, TEACHER, TAU).item() == pytest.approx(TAU**2 * KL_FULL, abs=1e-12)


def test_top_k_kd_renormalises_the_teacher_over_k():
    # τ = 1 teacher probabilities ∝ [4, 1, 1]; top-1 keeps token 0 with q = 1 → KL = −log(1/3)
    assert kd_loss(STUDENT, TopK.from_logits(TEACHER, 1), TAU).item() == pytest.approx(TAU**2 * math.log(3), abs=1e-12)
    # top-2 keeps tokens 0 and 1: at τ = 2, q ∝ √[4, 1] = [2/3, 1/3] → KL = 2/3·log 2
    top2 = TopK.from_logits(TEACHER, 2)
    assert top2.indices[0, 0] == 0 and torch.allclose(top2.log_probs.exp().sum(-1), torch.ones(1, dtype=torch.float64))
    assert kd_loss(STUDENT, top2, TAU).item() == pytest.approx(TAU**2 * 2 / 3 * math.log(2), abs=1e-12)


def test_causal_lm_averages_every_position_and_masked_lm_only_the_masked_ones():
    student = torch.cat([STUDENT, torch.tensor([[5.0, -3.0, 1.0]], dtype=torch.float64)])[None]  # (B=1, T=2, V=3)
    teacher = torch.cat([TEACHER, torch.tensor([[5.0, -3.0, 1.0]], dtype=torch.float64)])[None]  # position 1: KL = 0
    assert kd_loss(student, teacher, TAU).item() == pytest.approx(TAU**2 * KL_FULL / 2, abs=1e-12)
    teacher[0, 1] = torch.tensor([-9.0, 9.0, 0.0])  # now position 1 disagrees, but it is not masked
    labels = torch.tensor([[7, -100]])
    assert kd_loss(student, teacher, TAU, mask=labels != -100).item() == pytest.approx(TAU**2 * KL_FULL, abs=1e-12)
    assert kd_loss(student, TopK.from_logits(teacher, 1), TAU, mask=labels != -100).item() == pytest.approx(TAU**2 * math.log(3), abs=1e-12)


def _naive(student, teacher, mask):
    """Unchunked autograd reference."""
    log_ps = (student / TAU).log_softmax(-1)
    if isinstance(teacher, TopK):
        log_q = (teacher.log_probs / TAU).log_softmax(-1)
        kl = (log_q.exp() * (log_q - log_ps.gather(-1, teacher.indices))).sum(-1)
    else:
        log_q = (teacher / TAU).log_softmax(-1)
        kl = (log_q.exp() * (log_q - log_ps)).sum(-1)
    return TAU**2 * (kl[mask].mean() if mask is not None else kl.mean())


@pytest.mark.parametrize("top_k", [None, 5])
@pytest.mark.parametrize("masked", [False, True])
def test_chunked_and_unchunked_losses_agree_and_match_autograd(top_k, masked):
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(3, 37, 101, generator=gen).requires_grad_()  # (B, T, V)
    logits = torch.randn(3, 37, 101, generator=gen) * 2
    teacher = TopK.from_logits(logits, top_k) if top_k else logits
    mask = torch.rand(3, 37, generator=gen) < 0.15 if masked else None
    unchunked = kd_loss(student, teacher, TAU, mask, chunk_size=10_000)
    (unchunked_grad,) = torch.autograd.grad(unchunked, student)
    for chunk in (1, 7, 64):
        loss = kd_loss(student, teacher, TAU, mask, chunk_size=chunk)
        (grad,) = torch.autograd.grad(loss, student)
        assert abs(loss.item() - unchunked.item()) <= 1e-6, chunk
        torch.testing.assert_close(grad, unchunked_grad, atol=1e-6, rtol=0)
    reference = _naive(student, teacher, mask)  # plain autograd, fp32: agrees to fp32 rounding
    (reference_grad,) = torch.autograd.grad(reference, student)
    assert abs(unchunked.item() - reference.item()) <= 1e-5 * reference.item()
    torch.testing.assert_close(unchunked_grad, reference_grad, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("top_k", [None, 3])
def test_gradient_matches_autograd_in_double_precision(top_k):
    gen = torch.Generator().manual_seed(1)
    student = torch.randn(2, 5, 11, dtype=torch.float64, generator=gen, requires_grad=True)
    logits = torch.randn(2, 5, 11, dtype=torch.float64, generator=gen)
    teacher = TopK.from_logits(logits, top_k) if top_k else logits
    mask = torch.tensor([[True, False, True, True, False]] * 2)
    (grad,) = torch.autograd.grad(0.3 * kd_loss(student, teacher, TAU, mask, chunk_size=3), student)
    (expected,) = torch.autograd.grad(0.3 * _naive(student, teacher, mask), student)
    torch.testing.assert_close(grad, expected, atol=1e-12, rtol=0)


def test_student_logits_may_be_a_vocabulary_slice():
    student = torch.randn(2, 4, 13, requires_grad=True)  # student embedding padded to 13 rows, 10 shared tokens
    teacher = torch.randn(2, 4, 16)[..., :10]  # teacher padded to 16
    loss = kd_loss(student[..., :10], teacher, TAU)
    loss.backward()
    assert student.grad[..., 10:].abs().max() == 0 and student.grad[..., :10].abs().max() > 0
    assert loss.item() == pytest.approx(_naive(student[..., :10].detach(), teacher, None).item(), abs=1e-6)


def test_no_selected_position_gives_zero_loss_and_gradient():
    student = torch.randn(2, 4, 7, requires_grad=True)
    loss = kd_loss(student, torch.randn(2, 4, 7), TAU, mask=torch.zeros(2, 4, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and (student.grad is None or student.grad.abs().max() == 0)


def test_shape_and_temperature_errors():
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(STUDENT, TEACHER, 0.0)
    with pytest.raises(ValueError, match="vocabulary 4 != student vocabulary 3"):
        kd_loss(STUDENT, torch.zeros(1, 4), TAU)
    with pytest.raises(ValueError, match="mask shape"):
        kd_loss(STUDENT, TEACHER, TAU, mask=torch.ones(2, dtype=torch.bool))

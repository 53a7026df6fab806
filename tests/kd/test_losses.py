import math

import pytest
import torch

from kinherit.kd.losses import KD_LOSSES, TopK, kd_loss, lm_loss, mix

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
    assert kd_loss(student, TopK.from_logits(teacher, 1), TAU, mask=labels != -100).item() == pytest.approx(
        TAU**2 * math.log(3), abs=1e-12
    )


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
def test_blocked_and_unblocked_losses_agree_and_match_autograd(top_k, masked):
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(3, 37, 101, generator=gen).requires_grad_()  # (B, T, V)
    logits = torch.randn(3, 37, 101, generator=gen) * 2
    teacher = TopK.from_logits(logits, top_k) if top_k else logits
    mask = torch.rand(3, 37, generator=gen) < 0.15 if masked else None
    unchunked = kd_loss(student, teacher, TAU, mask, block_rows=10_000)
    (unchunked_grad,) = torch.autograd.grad(unchunked, student)
    for rows in (1, 7, 64):
        loss = kd_loss(student, teacher, TAU, mask, block_rows=rows)
        (grad,) = torch.autograd.grad(loss, student)
        assert abs(loss.item() - unchunked.item()) <= 1e-6, rows
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
    (grad,) = torch.autograd.grad(0.3 * kd_loss(student, teacher, TAU, mask, block_rows=3), student)
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


# ---- every registered KD loss against a naive dense reference ----
def _dense_teacher(teacher, tau):
    """q over the whole vocabulary (0 outside a top-K's tokens)."""
    if isinstance(teacher, TopK):
        q = torch.zeros(*teacher.indices.shape[:-1], V, dtype=teacher.log_probs.dtype)
        return q.scatter(-1, teacher.indices, (teacher.log_probs / tau).softmax(-1))
    return (teacher / tau).softmax(-1)


def _plogratio(a, b):
    """Σ a·log(a/b) over the entries where a > 0 (0·log 0 = 0, no NaN in the gradient)."""
    safe = torch.where(a > 0, a, torch.ones_like(a))
    return torch.where(a > 0, a * (safe.log() - b.log()), torch.zeros_like(a)).sum(-1)


def _naive_reverse(p, q, teacher):
    if isinstance(teacher, TopK):  # both over the teacher's K tokens, the student renormalised there
        p, q = p.gather(-1, teacher.indices), q.gather(-1, teacher.indices)
        p = p / p.sum(-1, keepdim=True)
    return _plogratio(p, q)


NAIVE = {
    "forward_kl": lambda p, q, teacher: _plogratio(q, p),
    "reverse_kl": _naive_reverse,
    "jsd": lambda p, q, teacher: 0.5 * _plogratio(q, (q + p) / 2) + 0.5 * _plogratio(p, (q + p) / 2),
    "skew_kl": lambda p, q, teacher: _plogratio(q, 0.1 * q + 0.9 * p),
}
V = 23


def _naive_kd(name, student, teacher, mask):
    p = (student / TAU).softmax(-1)
    rows = TAU**2 * NAIVE[name](p, _dense_teacher(teacher, TAU), teacher)
    return rows[mask].mean() if mask is not None else rows.mean()


def test_every_kd_loss_has_a_reference_implementation_here():
    assert set(KD_LOSSES) == set(NAIVE)


@pytest.mark.parametrize("name", sorted(NAIVE))
@pytest.mark.parametrize("top_k", [None, 4])
@pytest.mark.parametrize("masked", [False, True])
def test_kd_loss_matches_its_naive_reference_in_value_and_gradient(name, top_k, masked):
    gen = torch.Generator().manual_seed(2)
    student = torch.randn(2, 9, V, dtype=torch.float64, generator=gen, requires_grad=True)
    logits = torch.randn(2, 9, V, dtype=torch.float64, generator=gen) * 3
    teacher = TopK.from_logits(logits, top_k) if top_k else logits
    mask = torch.rand(2, 9, generator=gen) < 0.5 if masked else None
    expected = _naive_kd(name, student, teacher, mask)
    (expected_grad,) = torch.autograd.grad(0.7 * expected, student)
    assert expected.item() > 1e-3
    for rows in (1, 5, 1000):
        got = kd_loss(student, teacher, TAU, mask, loss=name, block_rows=rows)
        (grad,) = torch.autograd.grad(0.7 * got, student)
        assert got.item() == pytest.approx(expected.item(), rel=1e-12, abs=1e-14), rows
        torch.testing.assert_close(grad, expected_grad, atol=1e-13, rtol=1e-10)


@pytest.mark.parametrize("name", sorted(NAIVE))
def test_kd_loss_is_zero_when_the_student_is_the_teacher(name):
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 5, V, dtype=torch.float64, generator=gen) * 3
    top = TopK.from_logits(logits, 4)
    # a student that is the teacher: its logits, or for a top-K teacher the kept logits and (almost) −∞ elsewhere
    on_top = torch.full_like(logits, -1e4).scatter(-1, top.indices, logits.gather(-1, top.indices))
    for student, teacher in ((logits, logits), (on_top, top)):
        student = student.clone().requires_grad_()
        loss = kd_loss(student, teacher, TAU, loss=name)
        (grad,) = torch.autograd.grad(loss, student)
        assert abs(loss.item()) <= 1e-12 and grad.abs().max() <= 1e-12


def test_an_unknown_kd_loss_names_the_choices():
    with pytest.raises(ValueError, match="unknown KD loss 'revers_kl'; choose one of .*did you mean 'reverse_kl'"):
        kd_loss(STUDENT, TEACHER, TAU, loss="revers_kl")


def test_lm_loss_per_position_and_mean():
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 4, 5, generator=gen)
    labels = torch.tensor([[1, 2, -100, 4], [0, 3, 3, 1]])
    log_p = logits.log_softmax(-1)
    causal = lm_loss(logits, labels, masked=False, reduction="none")  # position i: −log p(x_i | x_<i)
    assert causal[:, 0].abs().max() == 0 and causal[0, 2] == 0
    assert causal[1, 2].item() == pytest.approx(-log_p[1, 1, 3].item(), rel=1e-6)
    assert lm_loss(logits, labels, masked=False).item() == pytest.approx(causal.sum().item() / 5, rel=1e-6)
    masked = lm_loss(logits, labels, masked=True, reduction="none")  # predicted in place
    assert masked[0, 3].item() == pytest.approx(-log_p[0, 3, 4].item(), rel=1e-6) and masked[0, 2] == 0
    assert lm_loss(logits, labels, masked=True).item() == pytest.approx(masked.sum().item() / 7, rel=1e-6)


def test_mix_weights_the_two_terms():
    assert mix(torch.tensor(2.0), torch.tensor(6.0), 0.25).item() == 3.0
    assert mix(torch.tensor(2.0), torch.tensor(6.0), torch.tensor(1.0)).item() == 6.0


def test_help_config_lists_every_kd_loss_and_cross_tokenizer_method_with_its_reference(capsys):
    from kinherit.cli import main
    from kinherit.kd.cross_tokenizer import METHODS

    with pytest.raises(SystemExit):
        main(["pretrain", "--help-config"])
    text = capsys.readouterr().out
    assert "teacher.loss  (str, default 'forward_kl')" in text
    assert "teacher.cross_tokenizer  (str | None, default null)" in text
    for registry in (KD_LOSSES, METHODS):
        for name, reference in registry.references.items():
            assert f"{name} — {reference}" in text

"""The cross-tokenizer losses against hand computations on a 3-token block and a 4-token vocabulary."""

from __future__ import annotations

import math

import pytest
import torch

from kinherit.kd.alignment import Aligner
from kinherit.kd.cross_tokenizer import METHODS
from kinherit.kd.cross_tokenizer.alm import alm_loss, binarised_kl
from kinherit.kd.cross_tokenizer.shared_prefix import shared_prefix_kd
from kinherit.kd.cross_tokenizer.shared_vocab import shared_vocab_kd
from kinherit.kd.cross_tokenizer.targets import (
    SharedVocab,
    Targets,
    longest_shared_prefix,
    online_targets,
    span_sums,
    token_log_likelihoods,
)
from kinherit.kd.losses import TopK

LOGITS = torch.tensor([[[1.0, 2.0, 0.0, -1.0], [0.5, 0.0, 1.5, 0.0], [2.0, -1.0, 0.0, 1.0]]])  # (1, 3, 4)
IDS = torch.tensor([[3, 2, 0]])


def _log_softmax(row: list[float]) -> list[float]:
    norm = math.log(sum(math.exp(v) for v in row))
    return [v - norm for v in row]


def _targets(**fields) -> Targets:  # noqa: ANN003
    shared = SharedVocab(
        torch.tensor([0, 2]), torch.tensor([5, 7]), torch.tensor([0, -1, 1, -1]), torch.tensor([0, 0, 2, 2])
    )
    base = {
        "span_start": torch.tensor([[-1, -1, 1]]),
        "teacher_ll": torch.tensor([[0.0, 0.0, -1.5]]),
        "at_boundary": torch.tensor([[True, False, True]]),
        "top": TopK(torch.tensor([[[math.log(0.7), math.log(0.3)]] * 3]), torch.tensor([[[2, 0]] * 3])),
        "shared": shared,
    }
    return Targets(**{**base, **fields})


def test_binarised_kl_is_the_bernoulli_kl_of_the_tempered_likelihoods():
    for tau in (1.0, 3.0):
        p, q = math.exp(-1.0 / tau), math.exp(-2.5 / tau)
        expected = p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
        assert binarised_kl(torch.tensor([-1.0]), torch.tensor([-2.5]), tau).item() == pytest.approx(expected, rel=1e-6)
    assert binarised_kl(torch.tensor([-0.7]), torch.tensor([-0.7]), 1.0).item() == pytest.approx(0.0, abs=1e-12)
    assert torch.isfinite(
        binarised_kl(torch.tensor([0.0]), torch.tensor([-30.0]), 1.0)
    ).all()  # a sure span stays finite


def test_span_log_likelihoods_sum_the_tokens():
    lp = token_log_likelihoods(LOGITS, IDS)  # log p(x_i | x_<i): row 0 has no prediction
    assert lp[0, 0] == 0
    assert lp[0, 1].item() == pytest.approx(_log_softmax([1.0, 2.0, 0.0, -1.0])[2])
    assert lp[0, 2].item() == pytest.approx(_log_softmax([0.5, 0.0, 1.5, 0.0])[0])
    sums = span_sums(lp, torch.tensor([[1]]), torch.tensor([[2]]))
    assert sums.item() == pytest.approx(lp[0, 1].item() + lp[0, 2].item(), rel=1e-6)


def test_alm_loss_by_hand():
    tau = 2.0
    student_ll = _log_softmax([1.0, 2.0, 0.0, -1.0])[2] + _log_softmax([0.5, 0.0, 1.5, 0.0])[0]  # the span = rows 1–2
    p, q = math.exp(-1.5 / tau), math.exp(student_ll / tau)
    expected = tau * (p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q)))
    logits = LOGITS.clone().requires_grad_()
    loss = alm_loss(logits, IDS, _targets(), tau)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert logits.grad[0, 2].abs().sum() == 0  # the last position predicts nothing inside the block
    # the student is less sure of the span than the teacher (ℓ_s < ℓ_t): descending raises its realised tokens
    assert logits.grad[0, 0, 2] < 0 and logits.grad[0, 1, 0] < 0


def test_alm_loss_without_spans_is_zero():
    assert alm_loss(LOGITS, IDS, _targets(span_start=torch.full((1, 3), -1)), 1.0).item() == 0.0


def test_shared_vocab_kd_by_hand():
    tau = 1.0
    expected = 0.0
    for row in (0, 2):  # the boundaries
        s = _log_softmax([LOGITS[0, row, 0].item(), LOGITS[0, row, 2].item()])  # renormalised over S = {0, 2}
        q = {2: 0.7, 0: 0.3}
        expected += q[2] * (math.log(0.7) - s[1]) + q[0] * (math.log(0.3) - s[0])
    assert shared_vocab_kd(LOGITS, IDS, _targets(), tau).item() == pytest.approx(expected / 2, rel=1e-5)


def test_shared_prefix_kd_by_hand():
    tau = 1.0
    expected = 0.0
    for row in (0, 2):
        p = [math.exp(v) for v in _log_softmax(LOGITS[0, row].tolist())]
        buckets = {0: p[0] + p[1], 2: p[2] + p[3]}  # student_bucket: tokens 0, 1 → 0; tokens 2, 3 → 2
        expected += 0.7 * (math.log(0.7) - math.log(buckets[2])) + 0.3 * (math.log(0.3) - math.log(buckets[0]))
    assert shared_prefix_kd(LOGITS, IDS, _targets(), tau).item() == pytest.approx(expected / 2, rel=1e-5)


def test_longest_shared_prefix_buckets():
    shared = {b"t": 10, b"th": 11, b"the": 12, b" ": 13}
    table = [b"there", b"th", b"tha", b"x", None, b"t"]
    assert longest_shared_prefix(table, shared, (4, 99)).tolist() == [12, 11, 11, -1, 99, 10]


BY_HAND = {
    "alm": test_alm_loss_by_hand,
    "shared_vocab": test_shared_vocab_kd_by_hand,
    "shared_prefix": test_shared_prefix_kd_by_hand,
}


def test_every_method_is_checked_by_hand_here():
    assert set(METHODS) == set(BY_HAND)
    for name, method in METHODS.items():
        assert method.name == name and method.boundary_targets in (None, "restricted", "bucketed")
        assert method.reads(method.cached_targets)  # a cache built for a method serves it


@pytest.mark.parametrize("name", sorted(BY_HAND))
def test_every_method_is_zero_when_the_teacher_is_the_student(name):
    """Same tokenizer on both sides (every token its own span and a common boundary): the teacher's targets,
    computed as the method declares, from the student's own logits give a zero loss and a zero gradient."""
    method = METHODS[name]
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 7, generator=gen, dtype=torch.float64)
    ids = torch.randint(0, 7, (2, 6), generator=gen)
    rows = torch.arange(6).expand(2, 6)
    identity = torch.arange(7)
    shared = SharedVocab(identity, identity, identity, identity, identity, identity)
    batch = {
        "xt_teacher_ids": ids,
        "xt_span_start": torch.where(rows > 0, rows, -1),
        "xt_boundary": rows,
        "xt_span_teacher": torch.where(rows > 0, rows, -1)[..., None].expand(2, 6, 2),
    }
    targets = online_targets(logits, batch, shared, None, buckets=method.bucketed)
    student = logits.clone().requires_grad_()
    loss = method.loss(student, ids, targets, 2.0)
    loss.backward()
    assert abs(loss.item()) < 1e-6 and student.grad.abs().max() < 1e-6  # the targets are fp32


def test_byte_fallback_ids_spelling_the_same_string_count_once():
    """Both vocabularies hold "a" and "<0x61>" (and so for every letter): each string is one entry of S, and each
    model's probability of it sums both ids (before, the teacher's "a" logit stood in S twice and "<0x61>" not at
    all)."""
    from tests.kd.test_alignment import byte_fallback_bpe

    student, teacher = byte_fallback_bpe(["▁cat"]), byte_fallback_bpe(["▁the"])
    aligner = Aligner(student, teacher, 64)
    shared = SharedVocab.of(aligner, student, teacher)
    s_bytes, t_bytes = aligner.student_bytes, aligner.teacher_bytes
    strings = [s_bytes[i] for i in shared.student_ids.tolist()]
    assert len(strings) == len(set(strings)) and sum(data == b"a" for data in t_bytes) == 2
    gen = torch.Generator().manual_seed(0)
    teacher_logits = torch.randn(1, 1, len(teacher), generator=gen, dtype=torch.float64) * 3
    student_logits = torch.randn(1, 1, len(student), generator=gen, dtype=torch.float64) * 3
    batch = {
        "xt_teacher_ids": torch.zeros(1, 1, dtype=torch.long),
        "xt_span_teacher": torch.full((1, 1, 2), -1),
        "xt_boundary": torch.zeros(1, 1, dtype=torch.long),
        "xt_span_start": torch.full((1, 1), -1),
    }
    targets = online_targets(teacher_logits, batch, shared, None)

    def string_probs(logits, table):  # noqa: ANN001, ANN202 - Σ of softmax over the ids spelling each σ of S, renormalised over S
        probs, mass = logits[0, 0].softmax(-1).tolist(), dict.fromkeys(strings, 0.0)
        for token, data in enumerate(table):
            if data in mass and (data is not None or token == 0):  # None: the separator, id 0 in both
                mass[data] += probs[token]
        return {data: p / sum(mass.values()) for data, p in mass.items()}

    q, p = string_probs(teacher_logits, t_bytes), string_probs(student_logits, s_bytes)
    got = dict(
        zip([s_bytes[i] for i in targets.top.indices[0, 0].tolist()], targets.top.log_probs[0, 0].exp().tolist())
    )
    assert got.keys() == q.keys() and all(got[data] == pytest.approx(q[data], rel=1e-5) for data in q)
    expected = sum(q[data] * (math.log(q[data]) - math.log(p[data])) for data in q)
    assert shared_vocab_kd(student_logits, None, targets, 1.0).item() == pytest.approx(expected, rel=1e-5)

"""Knowledge-distillation loss of Knowledge Inheritance, full-vocabulary or top-K, computed in token chunks.

For one position with student logits s ∈ R^V and teacher distribution q:

    KD = τ² · KL(q ‖ p_s),   p_s = softmax(s / τ)
    full teacher:  q = softmax(t / τ)                     (teacher logits t ∈ R^V)
    top-K teacher: q_k = softmax_k(ℓ_k / τ) over its K kept tokens, 0 elsewhere
                   (ℓ = teacher log-probabilities of the K most likely tokens; any per-position shift of ℓ
                    cancels in the softmax, so one stored top-K serves every temperature)

and `kd_loss` is the mean of KD over the selected positions. ∂KD/∂s = τ·(p_s − q), so the gradient is
computed chunk by chunk in the forward pass: the only full-size (positions × V) tensor it creates is that
gradient, never the per-chunk softmaxes that plain autograd would keep for every chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from kinherit.data.dataset import IGNORE_INDEX


def lm_loss(logits: Tensor, labels: Tensor, masked: bool) -> Tensor:
    """Mean cross-entropy over the positions with a label (≠ −100): masked LM predicts labels in place,
    causal LM predicts the label of the next position. logits (B, T, V), labels (B, T)."""
    if not masked:
        logits, labels = logits[:, :-1], labels[:, 1:]  # (B, T−1, V), (B, T−1)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)


def mix(lm: Tensor, kd: Tensor, alpha: Tensor | float) -> Tensor:
    """The inheritance mix (1 − α)·L_LM + α·KD."""
    return (1 - alpha) * lm + alpha * kd


@dataclass(frozen=True)
class TopK:
    """Teacher top-K: `log_probs` (..., K) float and `indices` (..., K) integer token ids."""

    log_probs: Tensor
    indices: Tensor

    @classmethod
    def from_logits(cls, logits: Tensor, k: int) -> TopK:
        """Top-`k` of `logits` (..., V), log-probabilities renormalised over the k kept tokens."""
        values, indices = logits.to(torch.promote_types(logits.dtype, torch.float32)).topk(k, dim=-1)  # (..., k)
        return cls(values.log_softmax(-1), indices)


def kd_loss(
    student_logits: Tensor,
    teacher: Tensor | TopK,
    temperature: float,
    mask: Tensor | None = None,
    chunk_size: int = 1024,
) -> Tensor:
    """Mean over selected positions of τ²·KL(p_teacher(·/τ) ‖ p_student(·/τ)); see the module docstring.

    student_logits (..., V); teacher: logits (..., V) or `TopK` with (..., K) fields; mask bool (...) selects
    positions (all when None). The teacher receives no gradient. Returns a scalar (0 when nothing is selected).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    lead = student_logits.shape[:-1]
    teacher_lead = (teacher.indices if isinstance(teacher, TopK) else teacher).shape[:-1]
    if teacher_lead != lead:
        raise ValueError(f"teacher positions {tuple(teacher_lead)} do not match student positions {tuple(lead)}")
    if not isinstance(teacher, TopK) and teacher.shape[-1] != student_logits.shape[-1]:
        raise ValueError(f"teacher vocabulary {teacher.shape[-1]} != student vocabulary {student_logits.shape[-1]}")
    if mask is not None and mask.shape != lead:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match positions {tuple(lead)}")
    rows = None if mask is None else mask.reshape(-1).nonzero().squeeze(1)  # (n,)
    return _ChunkedKD.apply(student_logits, teacher, float(temperature), rows, int(chunk_size))


def _flat(tensor: Tensor) -> Tensor:
    return tensor.reshape(-1, tensor.shape[-1])  # (N, last); a view whenever strides allow


def _take(flat: Tensor, rows: Tensor | None, start: int, stop: int) -> Tensor:
    return flat[start:stop] if rows is None else flat.index_select(0, rows[start:stop])


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)  # fp32 at least, fp64 stays fp64


def _chunk_kd(student: Tensor, teacher: Tensor | TopK, tau: float, grad_scale: float | None, out: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Summed τ²·KL of one chunk (c, V) and, if `grad_scale` is set, grad_scale·τ·(p_s − q) (written into `out` if given)."""
    dtype = _compute_dtype(student.dtype)
    log_ps = torch.log_softmax(student.to(dtype) / tau, -1, out=out)  # (c, V)
    if isinstance(teacher, TopK):
        log_q = (teacher.log_probs.to(dtype) / tau).log_softmax(-1)  # (c, K)
        q, index = log_q.exp(), teacher.indices.long()
        kl = (q * (log_q - log_ps.gather(1, index))).sum()
        grad = log_ps.exp_().scatter_add_(1, index, q.neg_()) if grad_scale is not None else None  # p_s − q, over log_ps
    else:
        log_q = (teacher.to(dtype) / tau).log_softmax(-1)  # (c, V)
        q = log_q.exp()
        kl = log_q.sub_(log_ps).mul_(q).nan_to_num_(nan=0.0).sum()  # q·(log q − log p_s), 0·log 0 = 0
        del log_q
        grad = log_ps.exp_().sub_(q) if grad_scale is not None else None  # p_s − q, over log_ps
    return kl * tau**2, None if grad is None else grad.mul_(tau * grad_scale)


class _ChunkedKD(torch.autograd.Function):
    @staticmethod
    def forward(ctx, student_logits: Tensor, teacher: Tensor | TopK, tau: float, rows: Tensor | None, chunk: int):  # noqa: ANN001
        flat_s = _flat(student_logits)  # (N, V)
        flat_t = TopK(_flat(teacher.log_probs), _flat(teacher.indices)) if isinstance(teacher, TopK) else _flat(teacher)
        n = flat_s.shape[0] if rows is None else rows.numel()
        want_grad = ctx.needs_input_grad[0]
        grad = torch.zeros_like(flat_s) if want_grad and n else None  # (N, V): the one full-size extra
        total = flat_s.new_zeros((), dtype=torch.float64)  # chunk sums accumulate without order-dependent rounding
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            part_t = (
                TopK(_take(flat_t.log_probs, rows, start, stop), _take(flat_t.indices, rows, start, stop))
                if isinstance(flat_t, TopK)
                else _take(flat_t, rows, start, stop)
            )
            in_place = grad is not None and rows is None and grad.dtype == _compute_dtype(grad.dtype)
            out = grad[start:stop] if in_place else None  # the chunk's gradient is computed right in its rows
            kl, part_grad = _chunk_kd(_take(flat_s, rows, start, stop), part_t, tau, 1 / n if want_grad else None, out)
            total += kl.double()
            if part_grad is not None and not in_place:
                if rows is None:
                    grad[start:stop] = part_grad
                else:
                    grad.index_copy_(0, rows[start:stop], part_grad.to(grad.dtype))
        if grad is not None:
            ctx.save_for_backward(grad.view(student_logits.shape))
        ctx.used = False
        return (total / max(n, 1)).to(_compute_dtype(flat_s.dtype))

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # noqa: ANN001, ANN205
        if not ctx.saved_tensors:  # nothing selected: the loss is a constant 0
            return None, None, None, None, None
        if ctx.used:
            raise RuntimeError("kd_loss supports one backward pass (its stored gradient is scaled in place)")
        ctx.used = True
        (grad,) = ctx.saved_tensors
        return grad.mul_(grad_out.to(grad.dtype)), None, None, None, None

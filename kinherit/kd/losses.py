"""The losses of knowledge inheritance and distillation, as pure functions: the LM loss, the KD losses (a
registry, `teacher.loss`) and their mix.

For one position with student logits s ∈ R^V, p = softmax(s / τ), and teacher distribution q:

    full teacher:  q = softmax(t / τ)                     (teacher logits t ∈ R^V)
    top-K teacher: q_k = softmax_k(ℓ_k / τ) over its K kept tokens, 0 elsewhere
                   (ℓ = teacher log-probabilities of the K most likely tokens; any per-position shift of ℓ
                    cancels in the softmax, so one stored top-K serves every temperature)
    top-p teacher: a top-K teacher whose rows keep k ≤ K tokens, the other K − k entries padding (ℓ = −∞, q = 0);
                   every loss gives padding exactly 0, so it equals the loss over each row's own k tokens

a KD loss is a divergence D(q, p) times τ² (Hinton et al.: it keeps the gradient on the scale of the LM loss),
and `kd_loss` is its mean over the selected positions. The default, `forward_kl`, is τ²·KL(q ‖ p); the others
are in `KD_LOSSES` (each entry's docstring states its math). `kd_loss` works on blocks of `block_rows`
positions and forms the gradient block by block in the forward pass: the only full-size (positions × V) tensor
it creates is that gradient, never the per-block softmaxes that plain autograd would keep for every block.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from kinherit.data.dataset import IGNORE_INDEX
from kinherit.registry import Registry


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


# ---- the LM loss and the mix ----
def lm_loss(logits: Tensor, labels: Tensor, masked: bool, reduction: str = "mean") -> Tensor:
    """Cross-entropy over the positions with a label (≠ −100): masked LM predicts labels in place, causal LM
    predicts the label of the next position. logits (B, T, V), labels (B, T).

    reduction "mean": the mean over labelled positions (a scalar). "none": (B, T), −log p(label) at the label's
    own position (causal: position 0 is 0, nothing predicts it), 0 where there is no label."""
    if not masked:
        logits, labels = logits[:, :-1], labels[:, 1:]  # (B, T−1, V), (B, T−1)
    if reduction == "mean":
        return torch.nn.functional.cross_entropy(
            logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX
        )
    nll = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="none"
    ).view(labels.shape)
    return nll if masked else torch.cat([nll.new_zeros(labels.shape[0], 1), nll], dim=1)  # (B, T)


def mix(lm: Tensor, kd: Tensor, alpha: float | Tensor) -> Tensor:
    """L = (1 − α)·L_LM + α·L_KD: the loss of knowledge inheritance and of distillation."""
    return (1 - alpha) * lm + alpha * kd


# ---- KD losses ----
BlockFn = Callable[[Tensor, Tensor | TopK, float, float | None, Tensor | None], tuple[Tensor, Tensor | None]]
"""(student block (c, V), teacher block (c, V) or TopK (c, K), τ, grad_scale, out) → (the block's summed loss,
grad_scale·∂/∂student or None when grad_scale is None; written into `out` when the function can)."""
RowFn = Callable[[Tensor, Tensor | TopK, float], Tensor]
"""(student logits (c, V) in fp32 at least, teacher block, τ) → (c,) loss per position, τ² included."""

KD_LOSSES: Registry[BlockFn] = Registry("KD loss")
DEFAULT_KD_LOSS = "forward_kl"


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)  # fp32 at least, fp64 stays fp64


def _teacher_log_probs(teacher: Tensor | TopK, tau: float, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
    """log q at τ, (c, V) or (c, K), and the top-K indices (c, K) (None for a full teacher)."""
    if isinstance(teacher, TopK):
        return (teacher.log_probs.to(dtype) / tau).log_softmax(-1), teacher.indices.long()
    return (teacher.to(dtype) / tau).log_softmax(-1), None


def _finite(log_prob: Tensor) -> Tensor:
    """`log_prob` with −∞ (a token of probability 0: a top-p cache's padding) set to 0, so that a term weighted by
    that probability is exactly 0 there and no ∞ − ∞ reaches the forward pass or autograd."""
    return log_prob.masked_fill(log_prob.isneginf(), 0.0)


def _student_on_top_k(log_p: Tensor, log_q: Tensor, index: Tensor) -> Tensor:
    """The student's (c, V) values gathered on the teacher's K tokens, −∞ on its padding (probability 0 there too)."""
    return log_p.gather(1, index).masked_fill(log_q.isneginf(), float("-inf"))


def register_kd_loss(name: str, reference: str) -> Callable[[RowFn], RowFn]:
    """Register a pure per-position loss `fn` as KD loss `name`; its gradient is taken by autograd, one block of
    rows at a time. `reference` is the paper it comes from (printed by --help-config)."""

    def decorator(fn: RowFn) -> RowFn:
        def block(
            student: Tensor, teacher: Tensor | TopK, tau: float, grad_scale: float | None, out: Tensor | None
        ) -> tuple[Tensor, Tensor | None]:
            s = student.detach().to(_compute_dtype(student.dtype)).requires_grad_(grad_scale is not None)
            with torch.enable_grad():
                total = fn(s, teacher, tau).sum()
            if grad_scale is None:
                return total.detach(), None
            (grad,) = torch.autograd.grad(total, s)
            return total.detach(), grad.mul_(grad_scale)

        KD_LOSSES.add(name, block, reference)
        return fn

    return decorator


def _forward_kl_block(
    student: Tensor, teacher: Tensor | TopK, tau: float, grad_scale: float | None, out: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """forward_kl: τ²·KL(q ‖ p) = τ²·Σ_v q_v·(log q_v − log p_v), summed over the block (top-K: over the K kept
    tokens, p normalised over the whole vocabulary). ∂/∂s = τ·(p − q), formed in closed form (into `out`)."""
    dtype = _compute_dtype(student.dtype)
    log_ps = torch.log_softmax(student.to(dtype) / tau, -1, out=out)  # (c, V)
    log_q, index = _teacher_log_probs(teacher, tau, dtype)
    q = log_q.exp()
    if index is not None:  # a padding entry (q = 0, log q = −∞) adds 0 to the KL and −q = 0 to the gradient
        kl = (q * (_finite(log_q) - log_ps.gather(1, index))).sum()
        grad = log_ps.exp_().scatter_add_(1, index, q.neg_()) if grad_scale is not None else None  # p − q, over log_ps
    else:
        kl = log_q.sub_(log_ps).mul_(q).nan_to_num_(nan=0.0).sum()  # q·(log q − log p), 0·log 0 = 0
        del log_q
        grad = log_ps.exp_().sub_(q) if grad_scale is not None else None  # p − q, over log_ps
    return kl * tau**2, None if grad is None else grad.mul_(tau * grad_scale)


KD_LOSSES.add(
    DEFAULT_KD_LOSS,
    _forward_kl_block,
    "Hinton, Vinyals & Dean 2015, Distilling the Knowledge in a Neural Network, https://arxiv.org/abs/1503.02531",
)


@register_kd_loss(
    "reverse_kl",
    reference="Gu et al. 2024, MiniLLM: Knowledge Distillation of Large Language Models, https://arxiv.org/abs/2306.08543",
)
def reverse_kl(student: Tensor, teacher: Tensor | TopK, tau: float) -> Tensor:
    """τ²·KL(p ‖ q) = τ²·Σ_v p_v·(log p_v − log q_v): mode-seeking, the student puts its mass where the teacher
    is confident. Top-K: q is 0 outside its K tokens, so both are taken over those K tokens, the student
    renormalised there (p̃_k = softmax_k(s_k / τ)); a top-p row's padding is outside both."""
    log_q, index = _teacher_log_probs(teacher, tau, student.dtype)
    log_p = (student / tau if index is None else _student_on_top_k(student / tau, log_q, index)).log_softmax(
        -1
    )  # (c, V) or (c, K)
    return tau**2 * (log_p.exp() * (_finite(log_p) - _finite(log_q))).sum(-1)


JSD_BETA = 0.5
"""β of `jsd`: 0.5 is the symmetric Jensen–Shannon divergence."""


@register_kd_loss(
    "jsd",
    reference="Agarwal et al. 2024, On-Policy Distillation of Language Models: Learning from Self-Generated "
    "Mistakes (GKD), https://arxiv.org/abs/2306.13649",
)
def jsd(student: Tensor, teacher: Tensor | TopK, tau: float) -> Tensor:
    """Generalised Jensen–Shannon divergence, β = `JSD_BETA`: τ²·[β·KL(q ‖ m) + (1 − β)·KL(p ‖ m)],
    m = β·q + (1 − β)·p, bounded by τ²·h(β) (h: binary entropy). Top-K: outside the K tokens q = 0 and
    m = (1 − β)·p, so those tokens add exactly −(1 − β)·log(1 − β)·(1 − Σ_K p_k)."""
    beta = JSD_BETA
    log_q, index = _teacher_log_probs(teacher, tau, student.dtype)
    log_p = (student / tau).log_softmax(-1)  # (c, V)
    if index is not None:
        log_p = _student_on_top_k(log_p, log_q, index)  # (c, K), padding −∞: neither distribution has it
    q, p = log_q.exp(), log_p.exp()
    log_q, log_p = _finite(log_q), _finite(log_p)  # padding: weights q = p = 0, finite logs
    log_m = torch.logaddexp(math.log(beta) + log_q, math.log(1 - beta) + log_p)
    rows = beta * (q * (log_q - log_m)).sum(-1) + (1 - beta) * (p * (log_p - log_m)).sum(-1)
    if index is not None:
        rows = rows - (1 - beta) * math.log(1 - beta) * (1 - p.sum(-1))
    return tau**2 * rows


SKEW_LAMBDA = 0.1
"""λ of `skew_kl`, DistiLLM's default."""


@register_kd_loss(
    "skew_kl",
    reference="Ko et al. 2024, DistiLLM: Towards Streamlined Distillation for Large Language Models, https://arxiv.org/abs/2402.03898",
)
def skew_kl(student: Tensor, teacher: Tensor | TopK, tau: float) -> Tensor:
    """Skew KL, λ = `SKEW_LAMBDA`: τ²·KL(q ‖ λ·q + (1 − λ)·p), finite even where the student gives a token no
    mass. Top-K: tokens outside the K kept ones have q = 0 and add nothing."""
    log_q, index = _teacher_log_probs(teacher, tau, student.dtype)
    log_p = (student / tau).log_softmax(-1)  # (c, V)
    if index is not None:
        log_p = log_p.gather(1, index)  # (c, K)
    q, log_q = log_q.exp(), _finite(log_q)  # a top-p row's padding: q = 0, the term 0
    log_m = torch.logaddexp(math.log(SKEW_LAMBDA) + log_q, math.log(1 - SKEW_LAMBDA) + log_p)
    return tau**2 * (q * (log_q - log_m)).sum(-1)


def kd_loss(
    student_logits: Tensor,
    teacher: Tensor | TopK,
    temperature: float,
    mask: Tensor | None = None,
    loss: str = DEFAULT_KD_LOSS,
    block_rows: int = 1024,
) -> Tensor:
    """Mean over selected positions of the KD loss `loss` (a `KD_LOSSES` name); see the module docstring.

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
    return _BlockwiseKD.apply(
        student_logits, teacher, float(temperature), rows, int(block_rows), KD_LOSSES.lookup(loss)
    )


def _flat(tensor: Tensor) -> Tensor:
    return tensor.reshape(-1, tensor.shape[-1])  # (N, last); a view whenever strides allow


def _take(flat: Tensor, rows: Tensor | None, start: int, stop: int) -> Tensor:
    return flat[start:stop] if rows is None else flat.index_select(0, rows[start:stop])


class _BlockwiseKD(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        student_logits: Tensor,
        teacher: Tensor | TopK,
        tau: float,
        rows: Tensor | None,
        block_rows: int,  # noqa: ANN001
        block_fn: BlockFn,
    ):
        flat_s = _flat(student_logits)  # (N, V)
        flat_t = TopK(_flat(teacher.log_probs), _flat(teacher.indices)) if isinstance(teacher, TopK) else _flat(teacher)
        n = flat_s.shape[0] if rows is None else rows.numel()
        want_grad = ctx.needs_input_grad[0]
        grad = torch.zeros_like(flat_s) if want_grad and n else None  # (N, V): the one full-size extra
        total = flat_s.new_zeros((), dtype=torch.float64)  # block sums accumulate without order-dependent rounding
        for start in range(0, n, block_rows):
            stop = min(start + block_rows, n)
            part_t = (
                TopK(_take(flat_t.log_probs, rows, start, stop), _take(flat_t.indices, rows, start, stop))
                if isinstance(flat_t, TopK)
                else _take(flat_t, rows, start, stop)
            )
            in_place = grad is not None and rows is None and grad.dtype == _compute_dtype(grad.dtype)
            out = grad[start:stop] if in_place else None  # the block's gradient may be computed right in its rows
            value, part_grad = block_fn(
                _take(flat_s, rows, start, stop), part_t, tau, 1 / n if want_grad else None, out
            )
            total += value.double()
            if part_grad is not None and not (in_place and part_grad.data_ptr() == out.data_ptr()):
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
            return None, None, None, None, None, None
        if ctx.used:
            raise RuntimeError("kd_loss supports one backward pass (its stored gradient is scaled in place)")
        ctx.used = True
        (grad,) = ctx.saved_tensors
        return grad.mul_(grad_out.to(grad.dtype)), None, None, None, None, None

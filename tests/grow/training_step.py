"""In the first training steps, every unit growth added gets a non-zero gradient (no unit is dead forever).

Three backward passes on tiny random batches with an SGD update after each of the first two; a weight slice
counts as trained when one of the passes gives it a non-zero gradient. A unit whose in-coming and out-going
weights are both zero (silu(0)·0 = 0) gets zero gradients on every pass and never trains; a unit with zero
out-going weights only (a drawn unit's consumer columns) gets gradients on its in-coming weights once the
first update has moved the out-going ones, one update later in a new identity layer whose branch norm gain
starts at zero (Gemma, OLMo 2: the gain blocks the gradient of everything before it until it has moved).
"""

from __future__ import annotations

import torch

from kinherit.arch import bind
from kinherit.grow.interleave import to_heads
from kinherit.grow.plan import GrowthPlan

BATCH, LENGTH = 2, 12


def _loss(model: torch.nn.Module, kind: str, ids: torch.Tensor) -> torch.Tensor:
    if kind in ("causal_lm", "masked_lm"):
        return model(input_ids=ids, labels=ids).loss
    out = model(input_ids=ids)
    weights = torch.linspace(-1.0, 1.0, out.last_hidden_state.shape[-1])
    pooled = getattr(out, "pooler_output", None)
    return (out.last_hidden_state * weights).sum() + (pooled.sum() if pooled is not None else 0.0)


def gradient_sizes(model: torch.nn.Module, plan: GrowthPlan, passes: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    """Parameter key -> Σ over `passes` backward passes of |gradient|, with an SGD step between passes."""
    kind = plan.family_spec()[1].output
    gen = torch.Generator().manual_seed(seed)
    vocab = int(model.get_input_embeddings().weight.shape[0])
    params = dict(model.named_parameters(remove_duplicate=False))
    total = {k: torch.zeros_like(p) for k, p in params.items()}
    model.eval()  # no dropout: the gradients are those of the function the growth kept
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(passes):
        optimizer.zero_grad()
        _loss(model, kind, torch.randint(0, vocab, (BATCH, LENGTH), generator=gen)).backward()
        for k, p in params.items():
            if p.grad is not None:
                total[k] += p.grad.abs()
        optimizer.step()
    return total


def dead_new_units(model: torch.nn.Module, plan: GrowthPlan) -> list[str]:
    """`tensor[axis a, unit j]` for every slice of a grown unit (a repeated copy or a drawn unit) along a
    producer, norm or consumer axis whose gradient is exactly zero on every pass of `gradient_sizes`."""
    family, head = plan.family_spec()
    maps = plan.channel_maps()
    grads = gradient_sizes(model, plan)
    params = dict(model.named_parameters(remove_duplicate=False))
    dead = []
    for b in bind(family.tensors(head.architecture), plan.target_shape, params, require_all=False):
        grad = grads[b.key]
        if all(axis.kind == "fixed" for axis in b.spec.axes):
            continue
        for dim, axis in enumerate(b.spec.axes):
            if axis.kind == "fixed":
                continue
            new = torch.cat([maps[s].repeat | maps[s].drawn for s in axis.spaces])  # (size,) concatenated segments
            if axis.interleaved:
                new = to_heads(new, 0, axis, maps, grown=True)
            norms = grad.movedim(dim, 0).reshape(grad.shape[dim], -1).sum(1)  # (size,)
            dead += [f"{b.key}[axis {dim}, unit {j}]" for j in torch.nonzero(new & (norms == 0)).flatten().tolist()]
    return dead

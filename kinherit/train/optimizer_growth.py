"""AdamW's state through a growth: the moments' image under the growth map, and the per-tensor LR scale.

Let A be the growth's linear map of the weights (`grow_map`: copies, divisions by replication counts, constant
factors, zeroed new outputs; no noise, no offsets), W' = A(W). Every grown element j reads one source element
i(j) with a coefficient a_j, so AᵀA is diagonal, D = Aᵀ(A(1)) (D_i = Σ_{j→i} a_j²). When W' = A(W) computes the
same function (an exact growth), the gradient at W' is the minimum-norm solution of Aᵀ G' = G:

    G'_j = a_j · G_i / D_i        (a unit read by k copies: the copies' consumers get G, each copy gets G/k)

so the moments map as  m'_j = a_j · m_i / D_i  and  v'_j = (a_j / D_i)² · v_i  (computed as A(m ⊘ D) and
A(√v ⊘ D)²), with the step count kept: Adam's normalised update m̂/√v̂ of every copy equals its source's. Its
change of the function is not: element j moves by lr·u_i while the grown image of the small model's update
moves it by a_j·lr·u_i. Scaling the LR of element j by a_j (and its weight decay by 1/a_j, so lr·wd is kept)
makes the first update after growth exactly the grown image of the small model's update (`lr_scales`; per
tensor, which is exact when a is constant over the tensor, as for uniform cloning and identity depth).

Elements whose growth image is zero have no history. A tensor with none (a new layer's parameter, the router and
shared-expert gate of an upcycled block) gets no state: its first update is a fresh Adam step, at step 0 with its own
bias correction. Inside a tensor that has history (new units drawn by `width: zero`), Adam's step count is the
tensor's, so zero moments would be bias-corrected by the tensor's step t rather than their own: their update
would start at (1 − β₁)/√(1 − β₂) ≈ 3.2× a fresh step's for large t and grow to ≈ 5× within tens of steps.
They get m = 0 and v = the tensor's mean v over its mapped elements instead: v̂ is then a typical g², and
their update ramps up with m (≈ (1 − β₁ᵏ)·g/rms(g) after k steps), never above a fresh step's size.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from kinherit.grow.plan import GrowthPlan
from kinherit.grow.reapply import grow_map

Moments = dict[str, torch.Tensor]
"""One parameter's AdamW state: step, exp_avg, exp_avg_sq."""


def _linear_map(plan: GrowthPlan, tensors: Mapping[str, torch.Tensor], keep: set[str]) -> dict[str, torch.Tensor]:
    """A(tensors), restricted to the grown parameters in `keep` (a tied head is its embedding's parameter)."""
    return {key: value for key, value in grow_map(plan, tensors).items() if key in keep}


def layer_of(key: str) -> int | None:
    """The layer index in a parameter name (`model.layers.3.mlp...` → 3); None outside the layer stack."""
    found = re.search(r"\.(\d+)\.", key)
    return int(found.group(1)) if found else None


def new_layer_params(plan: GrowthPlan, grown_params: set[str]) -> set[str]:
    """The grown parameters that belong to new, zero-initialised layers (identity depth growth)."""
    zeroed = {j for j, (_, zero) in enumerate(plan.layers) if zero}
    return {key for key in grown_params if layer_of(key) in zeroed}


def _image_and_gram(
    plan: GrowthPlan, fill: Mapping[str, torch.Tensor], grown_params: set[str]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(A(fill) per grown parameter, Aᵀ(A(fill)) per source parameter), the latter by autograd through A."""
    leaves = {name: value.detach().clone().requires_grad_(True) for name, value in fill.items()}
    image = _linear_map(plan, leaves, grown_params)
    inner = sum((value * value.detach()).sum() for value in image.values())
    grads = torch.autograd.grad(inner, list(leaves.values()), allow_unused=True)
    gram = {name: (g if g is not None else torch.zeros_like(leaves[name])).detach() for name, g in zip(leaves, grads)}
    return {key: value.detach() for key, value in image.items()}, gram


def map_adam_state(
    plan: GrowthPlan,
    source_state: Mapping[str, Moments],
    source_params: Mapping[str, torch.Tensor],
    grown_params: set[str],
) -> dict[str, Moments]:
    """The AdamW state of the grown parameters (see the module docstring). `source_state` maps each source
    parameter name to its state (parameters without state are skipped); parameters of new layers get none."""
    mapped = grown_params - new_layer_params(plan, grown_params)  # a new layer's gradient is not the image's
    reach, gram = _image_and_gram(plan, {n: torch.ones_like(p) for n, p in source_params.items()}, mapped)
    stated = {name: s for name, s in source_state.items() if "exp_avg" in s}
    if not stated:
        return {}

    def over_gram(x: torch.Tensor, name: str) -> torch.Tensor:
        d = gram[name]
        return torch.where(d > 0, x / d.clamp(min=torch.finfo(d.dtype).tiny), torch.zeros_like(x))

    first = _linear_map(plan, {n: over_gram(s["exp_avg"], n) for n, s in stated.items()}, mapped)
    root = _linear_map(plan, {n: over_gram(s["exp_avg_sq"].sqrt(), n) for n, s in stated.items()}, mapped)
    step = max(float(s["step"]) for s in stated.values())
    moments = {}
    for key in first:
        history = reach[key] != 0  # the elements with a source; the others are new (a router, a drawn unit)
        if not history.any():
            continue  # no history at all: no state, a fresh Adam step (step 0)
        second = root[key].square()
        if not history.all():  # m = 0; v = the tensor's mean v over its mapped elements (see the module docstring)
            second = torch.where(history, second, second[history].mean())
        moments[key] = {"step": torch.tensor(step), "exp_avg": first[key], "exp_avg_sq": second}
    return moments


def lr_scales(
    plan: GrowthPlan, source_params: Mapping[str, torch.Tensor], grown_params: set[str], previous: Mapping[str, float]
) -> dict[str, float]:
    """Per grown parameter, the LR scale that keeps the update's image: the mean |A(s)| over its non-zero
    elements, where s fills each source parameter with its own scale (`previous`, 1 when absent), so scales
    compound over stages. A tensor that is zero in full (a new layer's zeroed output) takes the scale of the
    same tensor in the layer it copies."""
    fill = {n: torch.full_like(p, previous.get(n, 1.0)) for n, p in source_params.items()}
    image, _ = _image_and_gram(plan, fill, grown_params)
    scales = {}
    for key, a in image.items():
        nonzero = a[a != 0].abs()
        if nonzero.numel():
            scales[key] = float(nonzero.mean())
    for key in set(image) - set(scales):
        layer = layer_of(key)
        twin = next((j for j, (src, zero) in enumerate(plan.layers) if not zero and src == plan.layers[layer][0]), None)
        scales[key] = scales.get(re.sub(r"\.\d+\.", f".{twin}.", key, count=1), 1.0) if twin is not None else 1.0
    return scales

"""Depth operators: which source layer every target layer copies, and which copies are zeroed.

A depth operator returns `[(source_layer, zeroed), ...]`, one entry per target layer. A zeroed
layer copies its source's weights but has its residual-out projections (attention out, MLP down,
their biases) set to zero. Each operator declares, when it is registered, the residual layouts
(`FamilySpec.residual`) it is exact for (`exact_for`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kinherit.registry import Registry

LayerPlan = list[tuple[int, bool]]


@dataclass(frozen=True)
class DepthOperator:
    """A registered layer map, `layers(old, new)`, with the residual layouts it preserves the function for."""

    layers: Callable[[int, int], LayerPlan]
    exact_for: tuple[str, ...] = ()

    def __call__(self, old: int, new: int) -> LayerPlan:
        return self.layers(old, new)

    def claims_exact(self, residual: str, old: int, new: int) -> bool:
        """Exact when no layer is added, or when the family's residual layout is one the operator declares."""
        return new == old or residual in self.exact_for


DEPTH_OPERATORS: Registry[DepthOperator] = Registry("depth operator")


def register_depth(
    name: str, reference: str | None = None, exact_for: tuple[str, ...] = ()
) -> Callable[[Callable[[int, int], LayerPlan]], DepthOperator]:
    """Decorator: register the layer map `fn(old, new)` as the depth operator `name`, exact for the residual
    layouts `exact_for`."""
    return lambda fn: DEPTH_OPERATORS.add(name, DepthOperator(fn, exact_for), reference)


def _spread(old: int, new: int) -> list[int]:
    """Target layer j -> source layer floor(j * old / new): each source layer repeated in place."""
    return [j * old // new for j in range(new)]


@register_depth(
    "identity",
    reference="Shen et al. 2022, Staged Training for Transformer Language Models (zero-initialised new layers), https://arxiv.org/abs/2203.06211",
    exact_for=("pre_norm", "branch_norm"),
)
def identity(old: int, new: int) -> LayerPlan:
    """New layers right after the layer they copy, with zero residual-out projections.

    Pre-norm (GPT-2, Llama): x + Attn(LN(x)) with zero out-projection is x -- exact.
    Branch norm (OLMo 2): x + RMSNorm(Attn(x)) with a zero norm gain is x -- exact. Zeroing the
    out-projection instead would not be: the cancelling noise leaves ~1e-8 of round-off that the
    RMSNorm rescales to the size of its gain, so these families mark the norm gains as `residual_out`.
    Post-norm (BERT): the layer computes LN2(h + FFN(h)), h = LN1(x + Attn(x)); with zero
    projections it is LN2(LN1(x)) which re-normalizes x with new affine parameters. x is already
    gamma * n + beta of the previous LayerNorm, and LN(gamma * n + beta) == x only when gamma is
    constant and beta is zero, so no choice of the new layer's LayerNorm parameters is exact for a
    trained model; the new layer copies its source's LayerNorms and the deviation is measured."""
    layers = _spread(old, new)
    return [(src, j > 0 and layers[j - 1] == src) for j, src in enumerate(layers)]


@register_depth(
    "stack",
    reference="Du et al. 2024, Stacking Your Transformers (G_stack), https://arxiv.org/abs/2405.15319",
)
def stack(old: int, new: int) -> LayerPlan:
    """G_stack: the whole trained stack repeated (target layer j copies j mod old). Not exact."""
    return [(j % old, False) for j in range(new)]


@register_depth(
    "interpolate",
    reference="Chang et al. 2018, Multi-level Residual Networks from Dynamical Systems View (interpolation), https://arxiv.org/abs/1710.10348",
)
def interpolate(old: int, new: int) -> LayerPlan:
    """StackBERT / bert2BERT: every trained layer duplicated next to itself. Not exact."""
    return [(src, False) for src in _spread(old, new)]

"""Replay a recorded growth on other weights of the same source shape.

replay(growth, A)      == the grown weights (noise included)
grow_map(growth, D)    == the linear part only, so grow(A + D) == grow(A) + grow_map(D)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from kinherit.grow.plan import load_plan
from kinherit.grow.surgery import grow_state


def _state_of(state_dict_or_model: torch.nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if isinstance(state_dict_or_model, torch.nn.Module):
        return state_dict_or_model.state_dict()
    return dict(state_dict_or_model)


def replay(growth, state_dict_or_model, *, noise: bool = True, strict: bool = True) -> dict[str, torch.Tensor]:
    """Re-apply a recorded growth (a GrowthPlan, growth.json or grown folder) to other weights of
    the source shape: same maps, same noise (the recorded scales)."""
    return dict(grow_state(load_plan(growth), _state_of(state_dict_or_model), noise=noise, strict=strict))


def grow_map(growth, delta, *, strict: bool = False) -> dict[str, torch.Tensor]:
    """The linear growth map G, for deltas: grow(A + delta) = grow(A) + G(delta). No noise and no
    offsets of (offset + w) parameters (Gemma's norms: G(D) = D·c where grow(w) = (1 + w)·c − 1);
    by default a partial delta (a subset of the tensors) is allowed."""
    return dict(grow_state(load_plan(growth), _state_of(delta), noise=False, strict=strict, linear=True))

"""Grow a trained model into a bigger shape: width and depth operators, plan, replay, verify.

Exports resolve on first use (PEP 562), so the CLI can read the operator registries without
importing every model class.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "assemble_grown_model": "api",
    "grow": "api",
    "grow_folder": "api",
    "Growth": "api",
    "GrowthNotExact": "api",
    "grow_streaming": "stream",
    "DEFAULT_NOISE_DB": "options",
    "GrowthOptions": "options",
    "copy_divergence": "divergence",
    "DivergenceReport": "divergence",
    "DEPTH_OPERATORS": "depth",
    "register_depth": "depth",
    "GrowthPlan": "plan",
    "load_plan": "plan",
    "make_plan": "plan",
    "plan_folder": "api",
    "grow_map": "reapply",
    "replay": "reapply",
    "Comparison": "verify",
    "GrowthReport": "verify",
    "tensor_sources": "sources",
    "TensorSource": "sources",
    "AxisSource": "sources",
    "WIDTH_OPERATORS": "width",
    "WidthOperator": "width",
    "register_width": "width",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kinherit.grow' has no attribute {name!r}")
    return getattr(importlib.import_module(f"kinherit.grow.{_EXPORTS[name]}"), name)

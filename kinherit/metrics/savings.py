"""Compute needed to reach a target loss, and the saving against a baseline.

A validation curve is a list of (x, loss) points in training order (x = cumulative FLOPs, tokens or
seconds). The compute to reach a target is the first crossing of `loss <= target`, linearly
interpolated between the two evaluations that bracket it:

    x* = x₀ + (loss₀ − target) / (loss₀ − loss₁) · (x₁ − x₀)

Saving against a baseline that needs X_b:  saving = 1 − x*/X_b,  speed-up = X_b / x*.
"""

from __future__ import annotations

from collections.abc import Sequence


def compute_to_reach(points: Sequence[tuple[float, float]], target: float) -> float | None:
    """x at which the curve first reaches `target` (interpolated), or None if it never does."""
    previous: tuple[float, float] | None = None
    for x, loss in points:
        if loss <= target:
            if previous is None or previous[1] == loss:
                return float(x)
            x0, loss0 = previous
            return float(x0 + (loss0 - target) / (loss0 - loss) * (x - x0))
        previous = (x, loss)
    return None


def saving(run_cost: float | None, baseline_cost: float) -> tuple[float | None, float | None]:
    """(saving fraction, speed-up) of a run that needs `run_cost` where the baseline needs `baseline_cost`."""
    if run_cost is None:
        return None, None
    if run_cost <= 0:
        return 1.0, float("inf")
    return 1.0 - run_cost / baseline_cost, baseline_cost / run_cost

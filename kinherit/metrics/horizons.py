"""Savings at several horizons of one long run: does an advantage last, shrink or reverse?

All runs are trained for the longest horizon H·B (B = the budget in steps). At horizon h ≤ H the
target is the baseline's best validation loss within its first h·B steps, first reached with F_b(h)
training FLOPs (so the baseline's own saving is 0 even where its curve is not monotone):

    saving(h)            = 1 − F_run(target) / F_b(h)       (F: first crossing, interpolated)
    loss at equal FLOPs  = L_run(C_b(h) − sunk)               (C_b(h): the baseline's FLOPs after h·B
                                                              steps; sunk: the teacher's / source's
                                                              own pre-training, counted here; None
                                                              when sunk alone exceeds C_b(h))

L_run(x) interpolates the run's validation curve linearly; it is None past the run's last evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kinherit.errors import KinheritError
from kinherit.metrics.savings import compute_to_reach, saving


@dataclass(frozen=True)
class HorizonPoint:
    horizon: float
    baseline_loss: float
    baseline_flops: float
    run_loss: float  # the run's own loss after the same number of steps
    flops_to_baseline_loss: float | None
    saving: float | None
    loss_at_equal_total_flops: float | None


def value_at(points: Sequence[tuple[float, float]], x: float) -> float | None:
    """Linear interpolation of a curve sorted by x; None outside its range."""
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    if points and x == points[0][0]:
        return points[0][1]
    return None


def _eval_at_step(evals: list[dict], step: int, name: str) -> dict:
    for event in evals:
        if int(event["step"]) == step:
            return event
    raise KinheritError(f"{name} has no evaluation at step {step}: eval_steps must divide the budget")


def horizon_points(
    baseline_evals: list[dict],
    run_evals: list[dict],
    budget_steps: int,
    horizons: Sequence[float],
    sunk_flops: float = 0.0,
) -> list[HorizonPoint]:
    """The run against the baseline at each horizon (evaluation events: step, flops, val_loss)."""
    run_curve = [(float(e["flops"]), float(e["val_loss"])) for e in run_evals]
    points = []
    for h in horizons:
        step = round(h * budget_steps)
        spent = float(_eval_at_step(baseline_evals, step, "the baseline")["flops"])
        seen = [(float(e["flops"]), float(e["val_loss"])) for e in baseline_evals if int(e["step"]) <= step]
        target = min(loss for _, loss in seen)
        base_flops = compute_to_reach(seen, target)
        needed = compute_to_reach(run_curve, target)
        points.append(
            HorizonPoint(
                horizon=h,
                baseline_loss=target,
                baseline_flops=base_flops,
                run_loss=float(_eval_at_step(run_evals, step, "the run")["val_loss"]),
                flops_to_baseline_loss=needed,
                saving=saving(needed, base_flops)[0] if base_flops > 0 else None,
                loss_at_equal_total_flops=value_at(run_curve, spent - sunk_flops),
            )
        )
    return points

"""Savings at several horizons, on hand-made curves with known answers."""

from __future__ import annotations

import pytest

from kinherit.metrics.horizons import horizon_points, value_at


def _evals(losses: list[float], flops_per_step: float = 10.0, every: int = 5) -> list[dict]:
    return [{"step": i * every, "flops": i * every * flops_per_step, "val_loss": loss} for i, loss in enumerate(losses)]


def test_value_at_interpolates_and_is_none_outside():
    curve = [(0.0, 4.0), (10.0, 2.0)]
    assert value_at(curve, 5.0) == 3.0 and value_at(curve, 0.0) == 4.0 and value_at(curve, 11.0) is None


def test_horizon_points_on_known_curves():
    baseline = _evals([5.0, 4.0, 3.0, 3.2, 2.5])  # steps 0..20, budget 10 steps: horizons at steps 10 and 20
    run = _evals([4.0, 3.0, 2.6, 2.4, 2.2])
    first, second = horizon_points(baseline, run, budget_steps=10, horizons=[1, 2], sunk_flops=50.0)
    # h=1: target = best baseline loss in steps <= 10 = 3.0, reached at step 10 (100 FLOPs); run reaches 3.0 at 50
    assert first.baseline_loss == 3.0 and first.baseline_flops == 100.0
    assert first.flops_to_baseline_loss == 50.0 and first.saving == pytest.approx(0.5)
    assert first.run_loss == 2.6
    assert first.loss_at_equal_total_flops == pytest.approx(3.0)  # run at 100 - 50 sunk = 50 FLOPs
    # h=2: the baseline is not monotone (3.2 at step 15) and its best is 2.5 at step 20 (200 FLOPs)
    assert second.baseline_loss == 2.5 and second.baseline_flops == 200.0
    assert second.flops_to_baseline_loss == pytest.approx(125.0)  # between 2.6 @100 and 2.4 @150
    assert second.saving == pytest.approx(1 - 125 / 200)
    assert second.loss_at_equal_total_flops == pytest.approx(2.4)  # 200 - 50 = 150 FLOPs


def test_the_baseline_saves_nothing_against_itself_even_when_not_monotone():
    baseline = _evals([5.0, 3.0, 3.5, 3.4, 2.9])
    for point in horizon_points(baseline, baseline, budget_steps=10, horizons=[1, 2]):
        assert point.saving == 0.0


def test_a_horizon_without_an_evaluation_is_an_error():
    with pytest.raises(Exception, match="eval_steps must divide the budget"):
        horizon_points(_evals([5.0, 4.0]), _evals([5.0, 4.0]), budget_steps=7, horizons=[1])

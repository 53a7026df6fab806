"""kinherit.plan.law: the prediction interval of a fit (hand-computed for a constant and a line) and the
extrapolation phrases."""

from __future__ import annotations

import math
import statistics

import pytest

from kinherit.plan.law import Fit, load_law


def _constant(values: list[float], t: float) -> Fit:
    n, mean = len(values), statistics.mean(values)
    return Fit((), (), (mean,), ((1 / n,),), statistics.variance(values), t, {"n": (1e5, 1e5), "tau": (10.0, 40.0)})


def test_a_constant_predicts_the_mean_with_the_prediction_interval_of_a_new_seed():
    values = [0.2, 0.3, 0.4]
    low, mid, high = _constant(values, 2.92).predict({"n": 1e5, "tau": 20.0})
    half = 2.92 * statistics.stdev(values) * math.sqrt(1 + 1 / 3)  # t · s · √(1 + 1/n)
    assert (low, mid, high) == (pytest.approx(0.3 - half), pytest.approx(0.3), pytest.approx(0.3 + half))


def test_a_line_in_log_tau_widens_away_from_its_centre():
    # y = 1 + 2·(log10 τ − 1); (XᵀX)⁻¹ of points at log10 τ − 1 = −1, 0, 1: diag(1/3, 1/2)
    fit = Fit(("tau",), (1.0,), (1.0, 2.0), ((1 / 3, 0.0), (0.0, 1 / 2)), 0.01, 2.0, {"tau": (1.0, 100.0)})
    low, mid, high = fit.predict({"tau": 1000.0})
    assert mid == pytest.approx(5.0)
    assert high - mid == pytest.approx(2.0 * math.sqrt(0.01 * (1 + 1 / 3 + 4 / 2)))
    assert high - mid > fit.predict({"tau": 10.0})[2] - 1.0


def test_a_setting_outside_the_range_says_by_how_much():
    fit = _constant([0.1, 0.2], 6.3)
    assert fit.outside({"n": 1e8, "tau": 20.0}) == ["N 1e+03× above the largest measured (1e+05)"]
    assert fit.outside({"n": 1e5, "tau": 2.0}) == ["τ 5× below the smallest measured (10)"]
    assert fit.outside({"n": 1e5, "tau": 40.0}) == []


def test_the_shipped_law_loads_and_names_its_command():
    law = load_law()
    assert law.regenerate.startswith("python -m bench.fit_reuse_law") and law.coverage == 0.9
    assert {"grow", "ki", "depth@0.8"} <= set(law.methods)

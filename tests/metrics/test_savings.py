import pytest

from kinherit.metrics.savings import compute_to_reach, saving


def test_interpolates_between_bracketing_evaluations():
    curve = [(0, 10.0), (100, 6.0), (200, 4.0), (300, 3.0)]
    assert compute_to_reach(curve, 5.0) == 150.0  # halfway from 6.0 (x=100) to 4.0 (x=200)
    assert compute_to_reach(curve, 3.5) == 250.0
    assert compute_to_reach(curve, 3.0) == 300.0
    assert compute_to_reach(curve, 10.0) == 0.0
    assert compute_to_reach(curve, 2.9) is None


def test_first_crossing_counts_even_if_the_loss_rises_again():
    curve = [(0, 8.0), (10, 4.0), (20, 6.0), (30, 3.0)]
    assert compute_to_reach(curve, 5.0) == 7.5


def test_saving_and_speedup():
    assert saving(25.0, 100.0) == (0.75, 4.0)
    assert saving(None, 100.0) == (None, None)
    fraction, speedup = saving(0.0, 100.0)
    assert fraction == 1.0 and speedup == float("inf")
    assert saving(150.0, 100.0) == pytest.approx((-0.5, 2 / 3))

"""bench.efficiency's aggregation over seeds and its table, on fixed tables (no training): an unreached seed is never
dropped (the protocol's steps themselves: tests/bench/test_protocol.py)."""

from __future__ import annotations

import pytest

from bench import efficiency
from bench.protocol import add_seed, format_summary, summarize_savings
from kinherit.errors import KinheritError


def _evals(losses: list[float], flops_per_eval: float = 10.0) -> list[dict]:
    """Evaluations every 10 steps, from step 0, at `flops_per_eval` FLOPs per 10 steps."""
    return [{"step": 10 * i, "flops": flops_per_eval * i, "val_loss": loss} for i, loss in enumerate(losses)]


def test_an_unreached_seed_counts_at_its_bound_and_marks_the_mean():
    summary = summarize_savings([0.30, 0.20, -0.40], [True, True, False])
    assert summary["mean"] == pytest.approx(1 / 30)  # (0.3 + 0.2 − 0.4) / 3, not the reached seeds' 0.25
    assert summary["std"] == pytest.approx(0.378594, abs=1e-6)
    assert (summary["reached"], summary["n"], summary["bound"]) == (2, 3, True)
    assert format_summary(summary) == "≤ 3.3% ± 37.9% (1 of 3 not reached, counted at their bound)"
    every = summarize_savings([0.30, 0.20], [True, True])
    assert format_summary(every) == "25.0% ± 7.1%" and every["bound"] is False
    with pytest.raises(ValueError):
        summarize_savings([0.1], [True, False])


def test_add_seed_records_the_bound_of_a_run_that_never_reaches_the_target():
    scratch = _evals([6.0, 5.0, 4.0, 3.0, 2.0])  # budget 20 steps, horizons 1 and 2 (steps 20, 40)
    fast = _evals([6.0, 4.0, 3.0, 2.5, 2.0])  # reaches 4.0 at 10 FLOPs (scratch: 20) and 2.0 at 40 (scratch: 40)
    slow = _evals([6.0, 5.5, 5.0, 4.5, 4.2])  # never reaches 4.0 nor 2.0 within its 40 FLOPs
    values: dict[str, list] = {}
    for run in (fast, slow):
        add_seed(values, scratch, run, budget=20, horizons=[1, 2], sunk=0.0)
    assert values["reached@1x"] == [True, False] and values["reached@2x"] == [True, False]
    # bound = 1 − F_run(last evaluation) / F_scratch(target): 1 − 40/20 at 1×, 1 − 40/40 at 2×
    assert values["saving@1x"] == pytest.approx([0.5, -1.0])
    assert values["saving@2x"] == pytest.approx([0.0, 0.0])
    assert values["loss@1x"] == [3.0, 5.0]
    summary = efficiency._summary(values)
    assert summary["saving@1x"]["mean"] == pytest.approx(-0.25) and summary["saving@1x"]["bound"]
    assert "reached@1x" not in summary and summary["loss@2x"]["mean"] == pytest.approx(3.1)


def test_a_baseline_that_never_improves_is_refused():
    flat = _evals([5.0, 5.0, 5.0])
    with pytest.raises(KinheritError, match="never improved"):
        add_seed({}, flat, flat, budget=10, horizons=[1], sunk=0.0)


def test_the_markdown_marks_an_upper_bound():
    values: dict[str, list] = {}
    scratch = _evals([6.0, 5.0, 4.0])
    add_seed(values, scratch, _evals([6.0, 5.5, 5.0]), budget=20, horizons=[1], sunk=0.0)
    rep = {"horizons": [1], "summary": {"ki": efficiency._summary(values)}, "grown_vs_scratch_every_eval": []}
    result = {
        "tune_seeds": [100],
        "seeds": [0],
        "report": rep,
        "tuning": {"best": {"scratch": 1e-3, "grown": 2e-3}, "grid": [1e-3, 2e-3], "interior": True},
    }
    row = next(line for line in efficiency.markdown(result).splitlines() if line.startswith("| ki |"))
    assert row.startswith("| ki | ≤ 0.0% (1 of 1 not reached, counted at their bound) | 5.000 |")


def test_the_markdown_states_the_tokens_per_parameter_and_the_configurations_tried():
    values: dict[str, list] = {}
    add_seed(values, _evals([6.0, 5.0, 4.0]), _evals([6.0, 4.5, 3.5]), budget=20, horizons=[1], sunk=0.0)
    result = {
        "tune_seeds": [100],
        "seeds": [0],
        "budget": {"steps": 200, "tokens_per_step": 2048},
        "params": {"non_embedding": 262_720, "with_embedding": 393_792},
        "report": {"horizons": [1], "summary": {"ki": efficiency._summary(values)}, "grown_vs_scratch_every_eval": []},
        "tuning": {
            "best": {"scratch": 1e-3, "grown": 2e-3},
            "grid": [5e-4, 1e-3, 2e-3, 4e-3],
            "interior": True,
            "configs_tried": {"scratch": 4, "grown": 4},
        },
    }
    lines = efficiency.markdown(result).splitlines()
    assert lines[0].endswith("(grid 0.0005, 0.001, 0.002, 0.004; interior: True; 4 configurations each)")
    assert lines[2] == (
        "B = 200 steps × 2,048 tokens = 409,600 tokens: 1.56 tokens per non-embedding parameter "
        "(262,720), 1.04 with embeddings (393,792)"
    )

"""bench/progressive.py: schedule variants (growth time, optimizer and LR options) and the tuning table."""

from __future__ import annotations

import math

import pytest

from bench import progressive
from bench import progressive_trend as trend


def test_a_variant_moves_the_growths_and_sets_every_stage():
    start, stages = progressive.schedule("both@0.8+reset+lrscale", 64, 4, 120)
    assert (start["hidden_size"], start["num_layers"]) == (32, 1)
    assert [s["at_step"] for s in stages] == [48, 96]  # 0.4·B and 0.8·B
    assert all(s["optimizer_state"] == "reset" and s["lr_scaling"] == "growth" for s in stages)
    assert [s["at_step"] for s in progressive.schedule("both", 64, 4, 120)[1]] == [30, 60]
    start, stages = progressive.schedule("shallow", 64, 4, 120)  # the control: depth's start, never grown
    assert (start["hidden_size"], start["num_layers"], stages) == (64, 1, [])
    start, stages = progressive.schedule("single@0.1+stack", 64, 4, 120)  # G_stack: 1 → 4 stacked layers, early
    assert (start["num_layers"], [(s["at_step"], s["num_layers"], s["depth"]) for s in stages]) == (
        1,
        [(12, 4, "stack")],
    )
    with pytest.raises(SystemExit, match=r"unknown option \+warm"):
        progressive.schedule("depth+warm", 64, 4, 120)


def test_the_tuning_table_shows_every_lr_tried_and_the_best():
    result = {
        "args": {"tune_seeds": [100], "budget": 120},
        "sizes": {
            "64x4": {
                "tuning": {
                    "best": {"scratch": 0.004, "both": 0.004},
                    "mean_final_loss": {"scratch": {"0.002": 5.9, "0.004": 5.74, "0.008": 5.8}, "both": {"0.004": 6.1}},
                }
            }
        },
    }
    lines = progressive.tuning_markdown(result).splitlines()
    assert "| scratch | 5.900 | 5.740 | 5.800 | 0.004: 5.740 |" in lines
    assert "| both | — | 6.100 | — | 0.004: 6.100 |" in lines


def test_the_table_states_each_size_s_budget_in_tokens_per_parameter():
    seed = {"saving": {"1x": 0.25}, "reached": {"1x": True}, "evaluations": 4, "not_worse_at_equal_flops": 3}
    entry = {
        "budget": {
            "steps": 120,
            "tokens_per_step": 2048,
            "params": {"non_embedding": 262_720, "with_embedding": 393_792},
        },
        "tuning": {"best": {"scratch": 4e-3, "depth": 8e-3}, "configs_tried": {"scratch": 4, "depth": 5}},
        "report": {"depth": [seed]},
    }
    lines = progressive.markdown({"horizons": [1], "sizes": {"64x4": entry}}).splitlines()
    assert lines[2].startswith("| size | B (tokens per parameter) | run | peak LR (configs tried) |")
    assert lines[5] == "| 64x4 | 0.935 / 0.624 | depth | 0.008 (5) | 25.0% | 3 of 4 |"  # 245,760 tokens / params


def test_the_size_trend_fits_a_power_law_in_the_compute_fraction_and_marks_unreached_seeds():
    seed = lambda saving, reached=True: {"saving": {"1x": saving}, "reached": {"1x": reached}}  # noqa: E731
    result = {
        "horizons": [1],
        "sizes": {
            "32x4": {"report": {"depth@0.8": [seed(0.2), seed(0.4), seed(0.3)]}},
            "64x4": {"report": {"depth@0.8": [seed(0.4), seed(0.5), seed(0.3, reached=False)]}},
            "128x4": {"report": {"depth@0.8": [seed(0.5), seed(0.5), seed(0.5)], "both": [seed(0.1)]}},
        },
    }
    rows = trend.points([result], "depth@0.8")
    assert [r["params"] for r in rows] == [65824, 262720, 1049728]  # the built llamas' non-embedding parameters
    fits = trend.trend(rows, 1e9)
    xs, ys = [math.log10(n) for n in (65824, 262720, 1049728)], [math.log10(1 - s) for s in (0.3, 0.4, 0.5)]
    mx, my = sum(xs) / 3, sum(ys) / 3
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    assert fits["1x"]["b"] == pytest.approx(b) and fits["1x"]["at"] == pytest.approx(1 - 10 ** (my + b * (9 - mx)))
    table = trend.markdown(rows, fits, "depth@0.8", 1e9).splitlines()
    assert table[5] == "| 64x4 | 262,720 | — | ≤ 40.0% ± 10.0% (1 of 3 not reached) |"  # no budget recorded: —
    assert table[-1].startswith("| extrapolated to 1e+09 (not measured) |")

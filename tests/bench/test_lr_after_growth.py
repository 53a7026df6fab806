"""bench/lr_after_growth.py: the LR rule after growth against scratch, without a sweep."""

from __future__ import annotations

import json

import pytest

from bench import lr_after_growth as bench


def test_the_table_has_one_row_per_corpus_and_factor():
    row = {
        "saving": {"1x": 0.5, "2x": -0.1},
        "reached": {"1x": True, "2x": False},
        "loss": {"1x": 4.2, "2x": 3.9},
        "evaluations": 20,
        "not_worse_at_equal_flops": 17,
        "max_excess": 0.021,
    }
    result = {
        "lr": 2e-3,
        "horizons": [1, 2],
        "corpora": {"doc": {"budget": 500, "scratch_final_loss": 3.88, "factors": {"2": row}}},
    }
    assert bench.markdown(result).splitlines()[2] == (
        "| doc | 0.002 × 2 | 17 of 20 | +0.0210 | 50.0% | ≤ -10.0% (1 of 1 not reached, counted at their bound) | "
        "3.9000 (3.8800) |"
    )


@pytest.mark.slow
def test_quick_run_trains_the_rule_against_scratch(tmp_path):
    bench.main(["--quick", "--horizon", "1", "--factors", "2", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "lr_after_growth.json").read_text())
    row = result["corpora"]["stdlib"]["factors"]["2"]
    assert row["evaluations"] == 3 and row["max_excess"] < 0  # the grown teacher starts far ahead at these sizes
    config = (tmp_path / "stdlib" / "factor2" / "grown" / "config.resolved.yaml").read_text()
    assert "growth_lr_factor: 2.0" in config and (tmp_path / "lr_after_growth.png").is_file()

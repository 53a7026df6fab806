"""bench/existing_teacher.py: its parsing and table on fixed numbers (fast), and one tiny end-to-end run (slow)."""

from __future__ import annotations

import json

import pytest

from bench import existing_teacher as bench


def test_a_teacher_is_written_size_at_multiple():
    assert bench.parse_teacher("64x2@16") == ((64, 2), 16)
    with pytest.raises(SystemExit, match="HxL@m"):
        bench.parse_teacher("64x2")


def test_linear_b_decays_over_the_first_budget_and_auto_is_left_to_the_run(tmp_path):
    assert bench.ki_settings("tau1-linearB", tmp_path, 120)["steps"] == 120
    auto = bench.ki_settings("tau2-auto", tmp_path, 120)
    assert (auto["schedule"], auto["steps"], auto["temperature"], auto["path"]) == (
        "auto",
        1.0,
        2.0,
        str(tmp_path / "model"),
    )


def _seed(saving: float, reached: bool, excess: float) -> dict:
    return {
        "seed": 0,
        "saving": {"1x": saving},
        "reached": {"1x": reached},
        "loss": {"1x": 5.0 + excess},
        "scratch_loss": {"1x": 5.0},
        "sunk_flops": 1e12,
        "evaluations": 4,
        "not_worse": 3,
        "max_excess": excess,
    }


def test_the_table_marks_an_unreached_seed_and_counts_evaluations():
    result = {
        "horizons": [1],
        "scratch_tuning": {"best": 4e-3, "configs_tried": 3, "interior": True},
        "teachers": {
            "64x2@8": {
                "params": 131_072,
                "multiple": 8,
                "knobs": "tau1-auto",
                "ki_tuning": {"tau1-auto": 5.1},
                "report": [_seed(0.3, True, 0.01), _seed(-0.1, False, 0.03)],
            }
        },
    }
    row = next(line for line in bench.markdown(result).splitlines() if line.startswith("| 64x2@8"))
    # (0.3 − 0.1)/2, the unreached seed at its bound
    assert "≤ 10.0% ± 28.3% (1 of 2 not reached, counted at their bound)" in row
    assert "6 of 8 (worst +0.030)" in row and "5.020 ± 0.014 / 5.000 ± 0.000" in row


@pytest.mark.slow
def test_a_tiny_sweep_reports_every_seed(tmp_path):
    bench.main(
        [
            "--student",
            "32x2",
            "--teachers",
            "32x1@2",
            "--budget",
            "8",
            "--horizon",
            "2",
            "--seeds",
            "0",
            "1",
            "--lr-grid",
            "2e-3",
            "4e-3",
            "8e-3",
            "--selection",
            "salt",
            "--select-with",
            "32x1@2",
            "--out",
            str(tmp_path),
        ]
    )
    result = json.loads((tmp_path / "existing_teacher.json").read_text())
    entry = result["teachers"]["32x1@2"]
    assert [s["seed"] for s in entry["report"]] == [0, 1] and entry["knobs"] in bench.KI_GRID
    assert entry["report"][0]["sunk_flops"] > 0 and result["scratch_tuning"]["interior"]
    salt = entry["selection"]["salt"]
    assert [s["seed"] for s in salt] == [0, 1] and salt[0]["saving"] != entry["report"][0]["saving"]
    table = (tmp_path / "existing_teacher.md").read_text()
    assert (tmp_path / "existing_teacher.png").is_file() and "| 32x1@2 |" in table and "| 32x1@2 + salt |" in table

"""bench/progressive.py: schedule variants (growth time, optimizer and LR options) and the tuning table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "bench"))
_spec = importlib.util.spec_from_file_location("bench_progressive", ROOT / "bench" / "progressive.py")
progressive = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(progressive)


def test_a_variant_moves_the_growths_and_sets_every_stage():
    start, stages = progressive.schedule("both@0.8+reset+lrscale", 64, 4, 120)
    assert (start["hidden_size"], start["num_layers"]) == (32, 1)
    assert [s["at_step"] for s in stages] == [48, 96]  # 0.4·B and 0.8·B
    assert all(s["optimizer_state"] == "reset" and s["lr_scaling"] == "growth" for s in stages)
    assert [s["at_step"] for s in progressive.schedule("both", 64, 4, 120)[1]] == [30, 60]
    with pytest.raises(SystemExit, match=r"unknown option \+warm"):
        progressive.schedule("depth+warm", 64, 4, 120)


def test_the_tuning_table_shows_every_lr_tried_and_the_best():
    result = {"args": {"tune_seeds": [100], "budget": 120}, "sizes": {"64x4": {"tuning": {
        "best": {"scratch": 0.004, "both": 0.004},
        "mean_final_loss": {"scratch": {"0.002": 5.9, "0.004": 5.74, "0.008": 5.8}, "both": {"0.004": 6.1}}}}}}
    lines = progressive.tuning_markdown(result).splitlines()
    assert "| scratch | 5.900 | 5.740 | 5.800 | 0.004: 5.740 |" in lines
    assert "| both | — | 6.100 | — | 0.004: 6.100 |" in lines

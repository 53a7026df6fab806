"""Golden loss curves: a tiny run's logged losses compared to a stored curve, so a refactor cannot silently
change training. Regenerate (only when a change of the numbers is intended) with KINHERIT_REGEN_GOLDEN=1."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kinherit.metrics.log import read_metrics

TOLERANCE = 1e-5
CURVE_KEYS = ("loss", "lm_loss", "kd_loss", "alpha", "ce", "kd", "val_loss", "val_accuracy")


def curve(run_dir: Path) -> list[dict[str, float]]:
    """The run's events reduced to step and the loss-like values."""
    return [
        {"step": e["step"], **{k: e[k] for k in CURVE_KEYS if k in e}} for e in read_metrics(run_dir / "metrics.jsonl")
    ]


def assert_matches_golden(run_dir: Path, golden: Path) -> None:
    got = curve(run_dir)
    if os.environ.get("KINHERIT_REGEN_GOLDEN") == "1":
        golden.write_text(json.dumps(got, indent=1) + "\n")
    expected = json.loads(golden.read_text())
    assert [sorted(e) for e in got] == [sorted(e) for e in expected], "the logged keys or steps changed"
    for new, old in zip(got, expected):
        for key, value in old.items():
            assert abs(new[key] - value) <= TOLERANCE, (new["step"], key, new[key], value)

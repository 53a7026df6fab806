"""An upcycled mixture of experts trains like any model folder: `model.from`, knowledge inheritance from the dense
model it came from, exact resume, the router loss logged, and experts that drift apart."""

from __future__ import annotations

import pytest

from kinherit.cli import main
from kinherit.config import validate_config
from kinherit.grow import grow_folder
from kinherit.metrics.log import read_metrics
from kinherit.train.pretrain import pretrain
from tests.conftest import CrashAt


def _events(out):
    return {e["step"]: e for e in read_metrics(out / "metrics.jsonl") if "loss" in e}


def test_upcycled_student_inherits_from_its_dense_source_resumes_exactly_and_its_experts_diverge(
    tmp_path, tiny_run, capsys
):
    dense = pretrain(validate_config(tiny_run(tmp_path / "dense", max_steps=2, eval_steps=2, save_steps=2))).model_dir
    report = grow_folder(dense, tmp_path / "moe", num_experts=4, experts_per_token=2)
    assert report.passed and report.max_deviation <= 1e-5

    straight = tiny_run(tmp_path / "straight")
    straight["model"] = {"from": str(tmp_path / "moe")}
    straight["teacher"] = {"path": str(dense), "schedule": "linear", "steps": 4}
    pretrain(validate_config(straight))
    crashed = {**straight, "out": str(tmp_path / "crashed")}
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(validate_config(crashed), callbacks=[CrashAt(6)])
    pretrain(validate_config(crashed), resume=True)

    expected, resumed = _events(tmp_path / "straight"), _events(tmp_path / "crashed")
    assert sorted(resumed) == list(range(1, 9))
    for step in range(5, 9):
        assert abs(resumed[step]["loss"] - expected[step]["loss"]) <= 1e-6, step
    assert all("aux_loss" in e for e in expected.values())  # the router's load-balancing loss is logged
    assert [s for s, e in expected.items() if "kd_loss" in e] == [1, 2, 3, 4]  # inheritance from the dense model
    assert all(e["teacher_flops"] > 0 for e in expected.values())

    capsys.readouterr()
    assert main(["divergence", str(tmp_path / "straight" / "model")]) == 0  # growth.json found through model.from
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("model.layers.")]
    assert len(rows) == 2 and all(int(r[3]) == 0 and int(r[4]) == 0 and float(r[6]) > 0 for r in rows), out

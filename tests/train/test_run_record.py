"""Every run writes run.json: its validation data's fingerprint, its lineage, how it ran; a teacher trained on
another split of the same corpus is refused (leakage)."""

import json

import pytest

from kinherit.config import validate_config
from kinherit.errors import KinheritError
from kinherit.metrics.log import read_metrics
from kinherit.metrics.report import build_report
from kinherit.train.pretrain import pretrain


def test_run_json_records_data_lineage_and_layout_and_leakage_is_refused(tmp_path, tiny_run):
    teacher = pretrain(validate_config(tiny_run(tmp_path / "small", max_steps=2, eval_steps=2, save_steps=2))).model_dir
    record = json.loads((tmp_path / "small" / "run.json").read_text())
    assert record["lineage"] == [] and record["distributed"] == {
        "world_size": 1,
        "distributed_type": "NO",
        "requested": None,
        "teacher": None,
    }
    data = record["data"]
    assert (data["split"], data["split_seed"], data["val_fraction"], data["max_documents"]) == (
        "contiguous",
        0,
        0.05,
        None,
    )
    assert len(data["val_sha256"]) == 16 and data["roots"][0].startswith("/")

    raw = tiny_run(tmp_path / "ki", max_steps=2, eval_steps=2, save_steps=2)
    raw["teacher"] = {"path": str(teacher)}
    pretrain(validate_config(raw))
    ki = json.loads((tmp_path / "ki" / "run.json").read_text())
    flops = read_metrics(tmp_path / "small" / "metrics.jsonl")[-1]["flops"]
    assert ki["lineage"] == [{"role": "teacher", "path": str(teacher.resolve()), "sunk_flops": flops}]
    assert ki["distributed"]["teacher"].startswith("online, a full copy on cpu in each of the 1 processes")
    assert ki["data"] == data  # same validation data: comparable
    report = build_report([tmp_path / "small", tmp_path / "ki"], tmp_path / "r")
    assert {r.name: r.sunk_flops for r in report.results} == {"small": 0.0, "ki": flops}

    leaky = {
        **raw,
        "out": str(tmp_path / "leaky"),
        "data": {**raw["data"], "split_seed": 7, "tokenizer": {"path": str(teacher)}},
    }
    with pytest.raises(
        KinheritError, match=r"small trained on the corpus this run validates on .* \(split_seed 0 vs 7\)"
    ):
        pretrain(validate_config(leaky))

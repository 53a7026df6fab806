"""End to end on the built-in task: A pre-trained, fine-tuned (A_tuned), continually pre-trained into B;
then B fine-tuned from scratch, init-based, distillation-based and combined (same data and budget)."""

import json

import pytest
from PIL import Image

from kinherit.config import validate_as as validate
from kinherit.config import validate_config
from kinherit.metrics.log import read_metrics
from kinherit.recycle.comparison import run
from kinherit.recycle.config import ExperimentConfig, FinetuneConfig
from kinherit.recycle.finetune import finetune
from kinherit.train.pretrain import pretrain

DATA = {"task": "stdlib-packages", "train_per_class": 100, "val_per_class": 25, "max_length": 32}
TRAIN = {"per_device_train_batch_size": 16, "learning_rate": 3e-3, "logging_steps": 10}


def _pretrain(tiny_run, out, steps, **model):
    config = tiny_run(out, max_steps=steps, eval_steps=steps, save_strategy="no", logging_steps=steps)
    config["data"]["val_fraction"] = 0.01
    if model:
        config["data"]["tokenizer"] = {"path": model["from"]}
        config["model"] = model
    return pretrain(validate_config(config)).model_dir


@pytest.mark.slow  # 13 s; recycle-experiment runs in tests/test_shipped_configs.py, its parts in tests/recycle
def test_recycling_beats_fine_tuning_b_from_scratch(tmp_path, tiny_run):
    a = _pretrain(tiny_run, tmp_path / "A", 30)
    tuned = finetune(
        validate(
            FinetuneConfig,
            {
                "out": str(tmp_path / "A_tuned"),
                "model": {"base": str(a)},
                "data": DATA,
                "train": {**TRAIN, "max_steps": 150, "eval_steps": 50},
            },
        )
    )
    assert tuned.final_accuracy > 0.45  # 4 balanced classes: chance is 0.25
    b = _pretrain(tiny_run, tmp_path / "B", 10, **{"from": str(a)})  # A continually pre-trained

    report = run(
        validate(
            ExperimentConfig,
            {
                "out": str(tmp_path / "exp"),
                "old_base": str(a),
                "old_tuned": str(tuned.model_dir),
                "new_base": str(b),
                "finetune": {
                    "data": DATA,
                    "train": {**TRAIN, "max_steps": 60, "eval_steps": 10},
                    "teacher": {"alpha": 0.8, "temperature": 10.0},
                },
            },
        )
    )
    result = {v.name: v for v in report.variants}
    print(report.markdown())
    assert list(result) == ["scratch", "init", "distill", "combined"]
    assert result["init"].step0 > result["scratch"].step0 + 0.15  # the recycled start already classifies
    assert result["combined"].step0 == result["init"].step0  # same starting point
    assert result["combined"].steps_to_target < result["scratch"].steps_to_target
    assert report.target == result["scratch"].final

    out = tmp_path / "exp"
    saved = json.loads((out / "report.json").read_text())
    assert saved["variants"]["combined"]["steps_to_target"] == result["combined"].steps_to_target
    assert "| combined |" in (out / "report.md").read_text()
    assert Image.open(out / "accuracy.png").size[0] > 300
    events = read_metrics(out / "distill" / "metrics.jsonl")
    assert events[0]["step"] == 0 and events[0]["flops"] == 0 and "val_accuracy" in events[0]
    scratch_last, distill_last = read_metrics(out / "scratch" / "metrics.jsonl")[-1], events[-1]
    assert distill_last["teacher_flops"] > 0  # distillation pays for the teacher's forward passes
    assert distill_last["flops"] == scratch_last["flops"] + distill_last["teacher_flops"]
    combined = result["combined"]
    assert saved["variants"]["combined"]["flops_to_target"] == combined.flops[combined.steps_to_target]
    assert all({"ce", "kd", "loss"} <= set(e) for e in events if "loss" in e)
    assert [e["step"] for e in events if "val_accuracy" in e] == list(range(0, 61, 10))
    assert (out / "combined" / "model" / "config.json").is_file() and (out / "recycled" / "recycle.json").is_file()

"""Online KI under torchrun: 2 CPU processes, gloo DDP, the teacher prepared by each process's accelerator."""

import pytest

from kinherit.metrics.log import read_metrics
from tests.inherit.conftest import student_run


def test_two_process_ki_run(tmp_path, cache_dir, teacher_dir, torchrun_pretrain):
    torchrun_pretrain(
        student_run(
            tmp_path / "ddp",
            cache_dir,
            {"path": str(teacher_dir), "schedule": "linear", "steps": 2, "top_k": 10},
            max_steps=4,
            eval_steps=4,
            save_steps=4,
            logging_steps=2,
        )
    )
    train = [e for e in read_metrics(tmp_path / "ddp" / "metrics.jsonl") if "loss" in e]
    assert [e["step"] for e in train] == [2, 4]
    assert train[0]["alpha"] == 0.75 and "kd_loss" in train[0] and "kd_loss" not in train[1]  # mean α of steps 0, 1
    assert train[1]["teacher_flops"] == train[0]["teacher_flops"] > 0  # the teacher ran on steps 0 and 1 only
    assert train[-1]["tokens"] == 4 * 8 * 32 * 2
    assert (tmp_path / "ddp" / "model" / "model.safetensors").is_file()


@pytest.mark.slow  # 9 s; auto and selection run single-process in tests/inherit, DDP KI below
def test_two_process_auto_and_selection_run(tmp_path, cache_dir, teacher_dir, torchrun_pretrain):
    """The main process scores the selection while the other waits and then reads the cache; both processes
    compute the teacher's validation loss and decide the auto stop from the same gathered evaluations."""
    config = student_run(
        tmp_path / "ddp",
        cache_dir,
        {"path": str(teacher_dir), "schedule": "auto", "steps": 1.0},
        max_steps=4,
        eval_steps=2,
        save_steps=4,
        logging_steps=2,
    )
    config["selection"] = {"method": "salt", "candidates": 64, "keep": 0.5}
    torchrun_pretrain(config)
    events = read_metrics(tmp_path / "ddp" / "metrics.jsonl")
    own = [e for e in read_metrics(teacher_dir.parent / "metrics.jsonl") if "val_loss" in e][-1]["val_loss"]
    evals = [e for e in events if "val_loss" in e]
    assert [e["step"] for e in evals] == [0, 2, 4] and all(abs(e["val_teacher_loss"] - own) < 1e-5 for e in evals)
    train = [e for e in events if "loss" in e]
    gap = min(max((evals[0]["val_loss"] - own) / 0.5, 0.0), 1.0)  # the step-0 evaluation weighs steps 0 and 1
    assert abs(train[0]["alpha"] - (1 + 0.75) / 2 * gap) < 1e-5
    assert all(e["selection_flops"] > 0 for e in events)
    assert len(list(cache_dir.glob("*/selection-*.json"))) >= 1

"""Online KI under torchrun: 2 CPU processes, gloo DDP, the teacher prepared by each process's accelerator."""

import pytest

from kinherit.kd.schedules import GAP_MARGIN
from kinherit.metrics.log import read_metrics
from tests.inherit.conftest import behind, student_run


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
def test_two_process_auto_and_selection_run(tmp_path, cache_dir, weak_teacher, torchrun_pretrain):
    """The main process scores the selection while the other waits and then reads the cache; both processes
    compute the teacher's validation loss, decide the auto stop from the same gathered evaluations and average the
    batch gap's losses (a collective on every micro-batch the teacher runs on)."""
    config = student_run(
        tmp_path / "ddp",
        cache_dir,
        {"path": str(weak_teacher), "schedule": "auto", "steps": 1.0},
        max_steps=4,
        eval_steps=2,
        save_steps=4,
        logging_steps=2,
    )
    config["model"] = {"from": str(behind(weak_teacher))}  # behind its teacher, which beats the unigram baseline
    config["data"]["tokenizer"] = {"path": str(weak_teacher)}
    config["selection"] = {"method": "salt", "candidates": 64, "keep": 0.5}
    torchrun_pretrain(config)
    events = read_metrics(tmp_path / "ddp" / "metrics.jsonl")
    own = [e for e in read_metrics(weak_teacher.parent / "metrics.jsonl") if "val_loss" in e][-1]["val_loss"]
    evals = [e for e in events if "val_loss" in e]
    assert [e["step"] for e in evals] == [0, 2, 4] and all(abs(e["val_teacher_loss"] - own) < 1e-5 for e in evals)
    train = [e for e in events if "loss" in e]
    credited = min(evals[0]["val_loss"], evals[0]["val_unigram_loss"])
    g_val = min(max((credited - own) / GAP_MARGIN, 0.0), 1.0)  # the step-0 evaluation weighs steps 0 and 1
    assert 0 < g_val and "teacher_lm_loss" in train[0] and "kd_loss" in train[0]  # the teacher ran: the collective too
    assert 0 <= train[0]["alpha"] <= (1 + 0.75) / 2 * g_val + 1e-7  # the batch gap's weight, capped by g_val
    assert all(e["selection_flops"] > 0 for e in events)
    assert len(list(cache_dir.glob("*/selection-*.json"))) >= 1

"""Online KI under torchrun: 2 CPU processes, gloo DDP, the teacher prepared by each process's accelerator."""

from kinherit.metrics.log import read_metrics
from tests.inherit.conftest import student_run


def test_two_process_ki_run(tmp_path, cache_dir, teacher_dir, torchrun_pretrain):
    torchrun_pretrain(student_run(tmp_path / "ddp", cache_dir, {"path": str(teacher_dir), "steps": 2, "top_k": 10},
                                  max_steps=4, eval_steps=4, save_steps=4, logging_steps=2))
    train = [e for e in read_metrics(tmp_path / "ddp" / "metrics.jsonl") if "loss" in e]
    assert [e["step"] for e in train] == [2, 4]
    assert train[0]["alpha"] == 0.75 and "kd_loss" in train[0] and "kd_loss" not in train[1]  # mean α of steps 0, 1
    assert train[1]["teacher_flops"] == train[0]["teacher_flops"] > 0  # the teacher ran on steps 0 and 1 only
    assert train[-1]["tokens"] == 4 * 8 * 32 * 2
    assert (tmp_path / "ddp" / "model" / "model.safetensors").is_file()

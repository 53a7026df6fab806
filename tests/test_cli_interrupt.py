"""Ctrl-C: one line with the last checkpoint and the command that continues the run, exit 130, no traceback."""

import shlex

import yaml
from transformers import TrainerCallback

from kinherit.cli import main
from kinherit.metrics.log import read_metrics
from kinherit.train import pretrain as pretrain_module


class CtrlCAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_ctrl_c_prints_the_resume_command_which_then_continues(tmp_path, tiny_run, monkeypatch, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tiny_run(tmp_path / "run", max_steps=6, save_steps=2, eval_steps=2)))
    real = pretrain_module.pretrain
    monkeypatch.setattr(
        pretrain_module, "pretrain", lambda config, resume=False: real(config, resume, callbacks=[CtrlCAt(3)])
    )
    assert main(["pretrain", "--config", str(path), "--train.seed=0"]) == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-2"
    command = f"kinherit pretrain --config {path} --train.seed=0 --resume"
    assert err == f"kinherit pretrain: interrupted; last checkpoint {checkpoint}; continue with: {command}"

    monkeypatch.setattr(pretrain_module, "pretrain", real)
    assert main(shlex.split(command)[1:]) == 0
    assert [e["step"] for e in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in e] == [1, 2, 3, 4, 5, 6]


def test_ctrl_c_before_any_checkpoint(tmp_path, tiny_run, monkeypatch, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tiny_run(tmp_path / "run", max_steps=6, save_steps=4, eval_steps=2)))
    real = pretrain_module.pretrain
    monkeypatch.setattr(
        pretrain_module, "pretrain", lambda config, resume=False: real(config, resume, callbacks=[CtrlCAt(1)])
    )
    assert main(["pretrain", "--config", str(path)]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert (
        err.strip().splitlines()[-1]
        == f"kinherit pretrain: interrupted before the first checkpoint of {tmp_path / 'run'}; run the same command "
        "again to start over"
    )


def test_the_interrupted_line_starts_on_a_line_of_its_own(tmp_path, tiny_run, monkeypatch, capfd):
    path = tmp_path / "run.yaml"
    path.write_text(
        yaml.safe_dump(tiny_run(tmp_path / "run", max_steps=6, save_steps=4, eval_steps=2, disable_tqdm=False))
    )
    real = pretrain_module.pretrain
    monkeypatch.setattr(
        pretrain_module, "pretrain", lambda config, resume=False: real(config, resume, callbacks=[CtrlCAt(3)])
    )
    assert main(["pretrain", "--config", str(path)]) == 130
    err = capfd.readouterr().err
    assert "run:  50%" in err  # the bar was drawn (3 of 6 steps), and left on its own line
    assert f"\nkinherit pretrain: interrupted before the first checkpoint of {tmp_path / 'run'}" in err, err[-300:]

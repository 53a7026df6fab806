"""The console during training: one progress bar with the latest values, never the Trainer's raw log dicts."""

import pytest

from kinherit.config import validate_config
from kinherit.train.pretrain import pretrain
from kinherit.train.progress import postfix


def test_postfix_shows_loss_val_loss_alpha_and_throughput():
    latest = {"step": 4, "loss": 5.12345, "val_loss": 5.5, "alpha": 0.25, "tokens_per_s": 12345.6, "flops": 1e9}
    assert postfix(latest) == {"loss": "5.1235", "val loss": "5.5000", "α": "0.250", "tok/s": "12,346"}
    assert postfix({"loss": 1.0}) == {"loss": "1.0000"}


@pytest.mark.parametrize("disable_tqdm", [False, True])
def test_one_bar_per_run_and_no_log_dicts(tmp_path, tiny_run, capfd, disable_tqdm):
    pretrain(
        validate_config(tiny_run(tmp_path / "run", max_steps=4, eval_steps=2, save_steps=4, disable_tqdm=disable_tqdm))
    )
    out, err = capfd.readouterr()
    console = out + err
    assert "{'loss'" not in console and "'eval_loss'" not in console and "train_runtime" not in console
    final = console.split("\r")[-1]  # tqdm redraws its line; the last drawing is the finished bar
    if disable_tqdm:
        assert "tok/s" not in console and "4/4" not in console
    else:
        assert console.count("run:   0%") == 1 and "Writing model shards" not in console, console  # one bar
        assert "4/4" in final and "loss=" in final and "val loss=" in final and "tok/s=" in final


def test_a_knowledge_inheritance_run_shows_its_lm_loss_not_the_mix():
    latest = {"loss": 0.58, "lm_loss": 5.4321, "kd_loss": 0.1, "alpha": 0.9, "val_loss": 5.6}
    assert postfix(latest) == {"loss": "5.4321", "val loss": "5.6000", "α": "0.900"}

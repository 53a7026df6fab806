"""The console of every command: kinherit's own lines, not other libraries' noise (transformers' loading and
saving bars, its LOAD REPORT of heads kinherit fills itself, its "missing keys" notice for tied heads)."""

import logging
from types import SimpleNamespace

import pytest
import torch
import yaml
from transformers.utils import logging as hf_logging

from kinherit.cli import main
from kinherit.hf_folder import library_console, tied_names
from tests.conftest import STDLIB

NOISE = ("Loading weights", "Writing model shards", "LOAD REPORT", "missing keys", "newly initialized", "mtime may not")


@pytest.fixture()
def bars_on():
    """transformers' progress bars enabled, as a user's shell has them (the test environment may not)."""
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()
    yield
    assert hf_logging.is_progress_bar_enabled(), "a command left transformers' bars switched off"
    if not was:
        hf_logging.disable_progress_bar()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, cache_dir):
    from tests.conftest import _tiny_run

    out = tmp_path_factory.mktemp("console") / "small"
    config = out.parent / "small.yaml"
    config.write_text(yaml.safe_dump(_tiny_run(out, cache_dir, "llama", max_steps=4, eval_steps=4, save_steps=2)))
    assert main(["pretrain", "--config", str(config)]) == 0
    return config, out


def _console(capfd, caplog):
    """What the command wrote (fd-level: tqdm bars, prints) and what it logged (transformers' handler holds the
    stderr of the time transformers was imported, which pytest's capture fixtures may not see)."""
    out, err = capfd.readouterr()
    return out + err + caplog.text


def test_grow_report_and_eval_show_no_library_bars(small_run, tmp_path, capfd, caplog, bars_on):
    _, run = small_run
    capfd.readouterr()
    caplog.set_level(logging.INFO, logger="transformers")
    assert main(["grow", str(run / "model"), str(tmp_path / "grown"), "--hidden-size", "64"]) == 0
    assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
    assert main(["eval", str(run / "model"), "--data", str(STDLIB / "textwrap.py")]) == 0
    console = _console(capfd, caplog)
    assert "result: PASS" in console and f"wrote {tmp_path / 'grown'}" in console  # kinherit's own lines
    assert f"report: {tmp_path / 'report'}/report.md" in console and "perplexity" in console
    assert not [n for n in NOISE if n in console], console


def test_resuming_a_tied_model_does_not_call_its_head_missing(small_run, capfd, caplog, bars_on):
    config, run = small_run
    capfd.readouterr()
    caplog.set_level(logging.INFO, logger="transformers")
    assert main(["pretrain", "--config", str(config), "--train.max_steps=6", "--resume"]) == 0
    console = _console(capfd, caplog)
    assert "resume: continuing" in console and "done: step 6" in console
    assert not [n for n in NOISE if n in console], console


def _head_model(tied: bool) -> torch.nn.Module:
    model = torch.nn.Module()
    model.embed = torch.nn.Embedding(10, 4)
    model.lm_head = torch.nn.Linear(4, 10, bias=False)
    model._keys_to_ignore_on_save = None  # what transformers' Trainer reads of a PreTrainedModel
    if tied:
        model.lm_head.weight = model.embed.weight
    return model


@pytest.mark.parametrize("tied", [True, False])
def test_the_trainer_calls_only_untied_keys_missing(tied, caplog):
    from torch.nn.modules.module import _IncompatibleKeys  # what load_state_dict returns

    from kinherit.train.trainer import KinheritTrainer

    model = _head_model(tied)
    assert tied_names(model) == ({"embed.weight", "lm_head.weight"} if tied else set())
    trainer = object.__new__(KinheritTrainer)  # only what the method reads: the model and its accelerator
    trainer.model, trainer.accelerator = model, SimpleNamespace(unwrap_model=lambda m: m)
    with caplog.at_level(logging.WARNING, logger="transformers.trainer"):
        trainer._issue_warnings_after_load(_IncompatibleKeys(missing_keys=["lm_head.weight"], unexpected_keys=[]))
    assert ("missing keys" in caplog.text) is not tied


def test_the_checkpoint_ordering_notice_is_dropped_inside_the_console_only(caplog):
    """transformers says "mtime may not be reliable ... falling back to numerical ordering" when it rotates
    checkpoints; checkpoint-N folders order by number anyway."""
    notice = "mtime may not be reliable on this filesystem, falling back to numerical ordering"
    with caplog.at_level(logging.WARNING, logger="transformers.trainer_utils"), library_console():
        logging.getLogger("transformers.trainer_utils").warning(notice)
    assert notice not in caplog.text
    with caplog.at_level(logging.WARNING, logger="transformers.trainer_utils"):
        logging.getLogger("transformers.trainer_utils").warning(notice)
    assert notice in caplog.text

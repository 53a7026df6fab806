"""`--resume` continues the checkpoint's own run: a changed config or corpus is refused in one line naming the keys,
before any data is read; logging/eval/save intervals, train.max_steps and output paths may change."""

import shutil

import pytest
import yaml

from kinherit.cli import main
from kinherit.config import validate_config
from kinherit.errors import KinheritError
from kinherit.metrics.log import read_metrics
from kinherit.train import pretrain as pretrain_module
from kinherit.train.pretrain import pretrain
from tests.conftest import SMALL_CORPUS


@pytest.fixture()
def finished(tmp_path, tiny_run):
    """A 4-step run with its checkpoint-4."""
    raw = tiny_run(tmp_path / "run", max_steps=4, save_steps=4, eval_steps=4)
    pretrain(validate_config(raw))
    return raw


def _refused(raw, monkeypatch):
    monkeypatch.setattr(
        pretrain_module, "prepare_corpus", lambda *a, **k: pytest.fail("the corpus was read before the refusal")
    )
    with pytest.raises(KinheritError) as err:
        pretrain(validate_config(raw), resume=True)
    return str(err.value)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("data", "sources", SMALL_CORPUS[:1]),
        ("train", "learning_rate", 1e-3),
        ("model", "hidden_size", 64),
    ],
)
def test_a_changed_key_is_refused_before_the_data_naming_it(finished, monkeypatch, section, key, value):
    raw = {**finished, section: {**finished[section], key: value}}
    message = _refused(raw, monkeypatch)
    assert message.startswith("--resume: this config differs from the checkpoint run's") and "\n" not in message
    assert f"{section}.{key} (" in message


def test_a_changed_hidden_size_from_the_cli_is_one_line_and_exit_2(finished, tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(finished))
    assert main(["pretrain", "--config", str(path), "--model.hidden_size=64", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.hidden_size (32 -> 64)" in err and "Traceback" not in err


def test_max_steps_and_intervals_may_change(finished, tmp_path, capsys):
    raw = {**finished, "train": {**finished["train"], "max_steps": 6, "eval_steps": 2, "save_steps": 2}}
    result = pretrain(validate_config(raw), resume=True)
    assert result.final_step == 6
    assert "resume: continuing" in capsys.readouterr().out
    steps = [e["step"] for e in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in e]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert "max_steps: 6" in (tmp_path / "run" / "config.resolved.yaml").read_text()


def test_a_modified_corpus_file_is_refused_by_its_fingerprint(tmp_path, tiny_run):
    corpus = tmp_path / "corpus"
    shutil.copytree(SMALL_CORPUS[0], corpus)
    raw = tiny_run(tmp_path / "run", max_steps=2, save_steps=2, eval_steps=2)
    raw["data"]["sources"] = [str(corpus)]
    pretrain(validate_config(raw))
    victim = sorted(corpus.glob("*.py"))[0]
    victim.write_text(victim.read_text() + "\n# edited\n")
    with pytest.raises(
        KinheritError, match=r"--resume: the corpus changed since the checkpoint \(fingerprint \w+ -> \w+"
    ):
        pretrain(validate_config(raw), resume=True)


def test_a_run_recorded_with_steps_auto_resumes_with_schedule_auto(tmp_path):
    """`teacher.steps: auto` of earlier versions is `schedule: auto, steps: 1.0` now: the same run, so it resumes."""
    from kinherit.config import dump_yaml
    from kinherit.train.resume_check import RESOLVED, check_resume

    now = dump_yaml(validate_config({"out": str(tmp_path), "teacher": {"path": "t", "schedule": "auto", "steps": 1.0}}))
    recorded = yaml.safe_load(now)
    recorded["teacher"].update(schedule="linear", steps="auto")
    (tmp_path / RESOLVED).write_text(yaml.safe_dump(recorded, sort_keys=False))
    assert check_resume(tmp_path, now) == []
    recorded["teacher"].update(schedule="heaviside")  # never the same run: refused, naming the keys
    (tmp_path / RESOLVED).write_text(yaml.safe_dump(recorded, sort_keys=False))
    with pytest.raises(
        KinheritError, match=r"teacher.schedule \('heaviside' -> 'auto'\), teacher.steps \('auto' -> 1.0\)"
    ):
        check_resume(tmp_path, now)


def test_a_longer_wsd_run_is_refused_with_the_override_that_keeps_its_decay(tmp_path, tiny_run, monkeypatch):
    """WSD's decay resolves from a fraction of max_steps: resuming with more steps would move it; the refusal gives
    the override that keeps the run's decay, and that override resumes."""
    raw = tiny_run(
        tmp_path / "run", max_steps=10, save_steps=10, eval_steps=10, lr_scheduler_type="warmup_stable_decay"
    )
    pretrain(validate_config(raw))
    longer = {**raw, "train": {**raw["train"], "max_steps": 20}}
    message = _refused(longer, monkeypatch)
    assert message.count("(--train.lr_scheduler_kwargs.num_decay_steps=2)") == 1
    monkeypatch.undo()
    kept = {**longer["train"], "lr_scheduler_kwargs": {"num_decay_steps": 2}}
    assert pretrain(validate_config({**longer, "train": kept}), resume=True).final_step == 20

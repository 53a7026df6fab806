"""End to end: a student inherits from a teacher with another BPE, online and from `kinherit cache-teacher
--cross-tokenizer`, from the CLI and from Python; the teacher is accounted on its own tokens; resume is exact;
`teacher.schedule: auto` compares per-span NLLs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from kinherit.cli import main
from kinherit.config import validate_config
from kinherit.hf_folder import load_lm
from kinherit.inherit.cross_tokenizer.blocks import CrossTokenizerBlocks
from kinherit.metrics.flops import flops_per_token
from kinherit.metrics.log import read_metrics
from kinherit.train.pretrain import pretrain
from tests.conftest import CrashAt, _tiny_run
from tests.inherit.conftest import student_run

SEQUENCES_PER_STEP, TEACHER_LEN = 8, 64  # 2·seq_len teacher tokens per block (the teacher holds 2048 positions, more than that)


@pytest.fixture(scope="module")
def other_teacher(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """A tiny llama trained with a 400-token BPE (the students use 512)."""
    config = _tiny_run(tmp_path_factory.mktemp("xtok") / "teacher", cache_dir, "llama", max_steps=40, eval_steps=40,
                       save_steps=40, logging_steps=40)
    config["data"]["tokenizer"]["train_vocab_size"] = 400
    return pretrain(validate_config(config)).model_dir


def _train_events(out: Path) -> list[dict]:
    return [e for e in read_metrics(out / "metrics.jsonl") if "loss" in e]


def test_cli_online_and_cached_agree_and_count_the_teacher_on_its_tokens(tmp_path, cache_dir, other_teacher):
    teacher = {"path": str(other_teacher), "cross_tokenizer": "shared_prefix", "steps": 4, "top_k": 8}
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(student_run(tmp_path / "online", cache_dir, teacher, max_steps=6, eval_steps=6)))
    assert main(["pretrain", "--config", str(config)]) == 0
    cache = tmp_path / "cache"
    assert main(["cache-teacher", "--teacher", str(other_teacher), "--config", str(config), "--cross-tokenizer", "shared_prefix",
                 "--top-k", "8", "--out", str(cache)]) == 0
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["cross_tokenizer"] and meta["targets"] == "bucketed" and meta["teacher_len"] == TEACHER_LEN
    assert main(["pretrain", "--config", str(config), "--teacher.path=null", f"--teacher.cache={cache}", f"--out={tmp_path / 'cached'}"]) == 0

    online, cached = _train_events(tmp_path / "online"), _train_events(tmp_path / "cached")
    teacher_fwd = flops_per_token(load_lm(other_teacher), TEACHER_LEN).forward
    assert [e["step"] for e in online] == [e["step"] for e in cached] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(online, cached):
        assert ("kd_loss" in a) == ("kd_loss" in b) == (a["step"] <= 4)
        for key in ("loss", "lm_loss", "kd_loss"):
            if key in a:
                assert a[key] == pytest.approx(b[key], abs=1e-3), (a["step"], key)  # fp16 storage of the top-K
        assert a["teacher_flops"] == b["teacher_flops"] == min(a["step"], 4) * SEQUENCES_PER_STEP * TEACHER_LEN * teacher_fwd
    assert online[0]["kd_loss"] > 0


def test_caches_of_the_other_kind_are_refused(tmp_path, cache_dir, other_teacher, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(student_run(tmp_path / "s", cache_dir, {"path": str(other_teacher), "cross_tokenizer": "alm"},
                                                 max_steps=2, eval_steps=2)))
    cache = tmp_path / "cache"
    assert main(["cache-teacher", "--teacher", str(other_teacher), "--config", str(config), "--cross-tokenizer", "shared_vocab",
                 "--top-k", "4", "--out", str(cache)]) == 0
    for overrides, message in (
        (["--teacher.cross_tokenizer=null"], "was built for a teacher with another tokenizer (cache-teacher --cross-tokenizer): set teacher.cross_tokenizer"),
        (["--teacher.cross_tokenizer=shared_prefix"], "holds restricted boundary targets, not those of teacher.cross_tokenizer: shared_prefix"),
    ):
        capsys.readouterr()
        assert main(["pretrain", "--config", str(config), "--teacher.path=null", f"--teacher.cache={cache}", *overrides]) == 2
        assert message in capsys.readouterr().err
    assert main(["pretrain", "--config", str(config), "--teacher.path=null", f"--teacher.cache={cache}"]) == 0  # alm reads any
    meta = json.loads((cache / "meta.json").read_text())
    (cache / "meta.json").write_text(json.dumps({**meta, "format": 1}))  # a cache of kinherit before span_start.bin
    capsys.readouterr()
    assert main(["pretrain", "--config", str(config), "--teacher.path=null", f"--teacher.cache={cache}", f"--out={tmp_path / 'old'}"]) == 2
    assert "has format 1, this kinherit reads format 2: rebuild it with kinherit cache-teacher" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["alm", "shared_vocab"])
def test_python_run_resumes_exactly(tmp_path, cache_dir, other_teacher, method):
    teacher = {"path": str(other_teacher), "cross_tokenizer": method, "steps": 6, "temperature": 1.0}
    straight = pretrain(validate_config(student_run(tmp_path / "straight", cache_dir, teacher, max_steps=8, eval_steps=8, save_steps=2)))
    crashed = validate_config(student_run(tmp_path / "crashed", cache_dir, teacher, max_steps=8, eval_steps=8, save_steps=2))
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(crashed, callbacks=[CrashAt(5)])
    resumed = pretrain(crashed, resume=True)
    expected, got = _train_events(tmp_path / "straight"), _train_events(tmp_path / "crashed")
    assert [e["step"] for e in got] == [e["step"] for e in expected]
    for old, new in zip(expected, got):
        for key in ("loss", "lm_loss", "kd_loss", "alpha", "teacher_flops"):
            assert (key in old) == (key in new) and abs(old.get(key, 0) - new.get(key, 0)) <= 1e-6, (old["step"], key)
        if "kd_loss" in old:
            assert old["loss"] == pytest.approx((1 - old["alpha"]) * old["lm_loss"] + old["alpha"] * old["kd_loss"], rel=1e-5)
    assert resumed.final_val_loss == pytest.approx(straight.final_val_loss, abs=1e-6)


def test_auto_compares_the_nll_of_the_same_text(tmp_path, cache_dir, other_teacher):
    teacher = {"path": str(other_teacher), "cross_tokenizer": "alm", "schedule": "auto", "steps": 1.0}
    pretrain(validate_config(student_run(tmp_path / "auto", cache_dir, teacher, max_steps=6, eval_steps=6)))
    events = _train_events(tmp_path / "auto")
    first = events[0]
    assert first["student_span_nll"] > first["teacher_span_nll"] > 0  # a fresh student is behind the trained teacher
    assert 0 < first["alpha"] <= 1.0
    assert first["alpha"] == pytest.approx(min(1.0, (first["student_span_nll"] - first["teacher_span_nll"]) / 0.5), rel=1e-4)


def test_a_teacher_normalising_some_characters_is_refused_before_training(tmp_path, cache_dir, other_teacher, capsys, monkeypatch):
    """Its tokenizer writes "{" as "(" (the start-up probe has no "{"): refused in one line before any block is aligned."""
    teacher = tmp_path / "teacher"
    shutil.copytree(other_teacher, teacher)
    spec = json.loads((teacher / "tokenizer.json").read_text())
    spec["normalizer"] = {"type": "Replace", "pattern": {"String": "{"}, "content": "("}
    (teacher / "tokenizer.json").write_text(json.dumps(spec))
    aligned = []
    original = CrossTokenizerBlocks.__getitem__
    monkeypatch.setattr(CrossTokenizerBlocks, "__getitem__", lambda self, index: aligned.append(index) or original(self, index))
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(student_run(tmp_path / "s", cache_dir, {"path": str(teacher), "cross_tokenizer": "alm"},
                                                 max_steps=2, eval_steps=2)))
    capsys.readouterr()
    assert main(["pretrain", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("kinherit pretrain: error: teacher tokenizer") and "Traceback" not in "\n".join(err)
    assert "does not keep the text as is (its tokens spell '(' for '{')" in err[-1]
    assert aligned == []  # today's start-up probe let it through and the first aligned block failed mid-run

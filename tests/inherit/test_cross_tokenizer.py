"""End to end: a student inherits from a teacher with another BPE, online and from `kinherit cache-teacher
--cross-tokenizer`, from the CLI and from Python; the teacher is accounted on its own tokens; resume is exact;
`teacher.schedule: auto` compares per-span NLLs of the validation split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from kinherit.cli import main
from kinherit.config import load_config, validate_config
from kinherit.data.dataset import PackedBlocks
from kinherit.data.packing import prepare_corpus
from kinherit.data.tokenizer import load_tokenizer
from kinherit.hf_folder import load_lm
from kinherit.inherit.cross_tokenizer.blocks import CrossTokenizerBlocks
from kinherit.kd.alignment import Aligner
from kinherit.kd.schedules import GAP_MARGIN
from kinherit.metrics.flops import flops_per_token
from kinherit.metrics.log import read_metrics
from kinherit.train.pretrain import pretrain
from tests.conftest import CrashAt, _tiny_run
from tests.inherit.conftest import student_run

TIMING = ("tokens_per_s", "time_s")
SEQUENCES_PER_STEP, TEACHER_LEN = (
    8,
    64,
)  # 2·seq_len teacher tokens per block (the teacher holds 2048 positions, more than that)


@pytest.fixture(scope="module")
def other_teacher(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """A tiny llama trained with a 400-token BPE (the students use 512)."""
    config = _tiny_run(
        tmp_path_factory.mktemp("xtok") / "teacher",
        cache_dir,
        "llama",
        max_steps=40,
        eval_steps=40,
        save_steps=40,
        logging_steps=40,
    )
    config["data"]["tokenizer"]["train_vocab_size"] = 400
    return pretrain(validate_config(config)).model_dir


def _train_events(out: Path) -> list[dict]:
    return [e for e in read_metrics(out / "metrics.jsonl") if "loss" in e]


def test_cli_online_and_cached_agree_and_count_the_teacher_on_its_tokens(tmp_path, cache_dir, other_teacher):
    teacher = {
        "path": str(other_teacher),
        "cross_tokenizer": "shared_prefix",
        "schedule": "linear",
        "steps": 4,
        "top_k": 8,
    }
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(student_run(tmp_path / "online", cache_dir, teacher, max_steps=6, eval_steps=6)))
    assert main(["pretrain", "--config", str(config)]) == 0
    cache = tmp_path / "cache"
    assert (
        main(
            [
                "cache-teacher",
                "--teacher",
                str(other_teacher),
                "--config",
                str(config),
                "--cross-tokenizer",
                "shared_prefix",
                "--top-k",
                "8",
                "--out",
                str(cache),
            ]
        )
        == 0
    )
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["cross_tokenizer"] and meta["targets"] == "bucketed" and meta["teacher_len"] == TEACHER_LEN
    assert (
        main(
            [
                "pretrain",
                "--config",
                str(config),
                "--teacher.path=null",
                f"--teacher.cache={cache}",
                f"--out={tmp_path / 'cached'}",
            ]
        )
        == 0
    )

    online, cached = _train_events(tmp_path / "online"), _train_events(tmp_path / "cached")
    teacher_fwd = flops_per_token(load_lm(other_teacher), TEACHER_LEN).forward
    assert [e["step"] for e in online] == [e["step"] for e in cached] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(online, cached):
        assert ("kd_loss" in a) == ("kd_loss" in b) == (a["step"] <= 4)
        for key in ("loss", "lm_loss", "kd_loss"):
            if key in a:
                assert a[key] == pytest.approx(b[key], abs=1e-3), (a["step"], key)  # fp16 storage of the top-K
        assert (
            a["teacher_flops"]
            == b["teacher_flops"]
            == min(a["step"], 4) * SEQUENCES_PER_STEP * TEACHER_LEN * teacher_fwd
        )
    assert online[0]["kd_loss"] > 0


def test_caches_of_the_other_kind_are_refused(tmp_path, cache_dir, other_teacher, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            student_run(
                tmp_path / "s",
                cache_dir,
                {"path": str(other_teacher), "cross_tokenizer": "alm"},
                max_steps=2,
                eval_steps=2,
            )
        )
    )
    cache = tmp_path / "cache"
    assert (
        main(
            [
                "cache-teacher",
                "--teacher",
                str(other_teacher),
                "--config",
                str(config),
                "--cross-tokenizer",
                "shared_vocab",
                "--top-k",
                "4",
                "--out",
                str(cache),
            ]
        )
        == 0
    )
    for overrides, message in (
        (
            ["--teacher.cross_tokenizer=null"],
            "was built for a teacher with another tokenizer (cache-teacher --cross-tokenizer): set "
            "teacher.cross_tokenizer",
        ),
        (
            ["--teacher.cross_tokenizer=shared_prefix"],
            "holds restricted boundary targets, not those of teacher.cross_tokenizer: shared_prefix",
        ),
    ):
        capsys.readouterr()
        assert (
            main(["pretrain", "--config", str(config), "--teacher.path=null", f"--teacher.cache={cache}", *overrides])
            == 2
        )
        assert message in capsys.readouterr().err
    assert (
        main(["pretrain", "--config", str(config), "--teacher.path=null", f"--teacher.cache={cache}"]) == 0
    )  # alm reads any
    meta = json.loads((cache / "meta.json").read_text())
    (cache / "meta.json").write_text(json.dumps({**meta, "format": 1}))  # a cache of kinherit before span_start.bin
    capsys.readouterr()
    assert (
        main(
            [
                "pretrain",
                "--config",
                str(config),
                "--teacher.path=null",
                f"--teacher.cache={cache}",
                f"--out={tmp_path / 'old'}",
            ]
        )
        == 2
    )
    assert (
        "has format 1, this kinherit reads format 2: rebuild it with kinherit cache-teacher" in capsys.readouterr().err
    )


@pytest.mark.parametrize("method", ["alm", "shared_vocab"])
def test_python_run_resumes_exactly(tmp_path, cache_dir, other_teacher, method):
    teacher = {"path": str(other_teacher), "cross_tokenizer": method, "steps": 6, "temperature": 1.0}
    straight = pretrain(
        validate_config(student_run(tmp_path / "straight", cache_dir, teacher, max_steps=8, eval_steps=8, save_steps=2))
    )
    crashed = validate_config(
        student_run(tmp_path / "crashed", cache_dir, teacher, max_steps=8, eval_steps=8, save_steps=2)
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(crashed, callbacks=[CrashAt(5)])
    resumed = pretrain(crashed, resume=True)
    expected, got = _train_events(tmp_path / "straight"), _train_events(tmp_path / "crashed")
    assert [e["step"] for e in got] == [e["step"] for e in expected]
    for old, new in zip(expected, got):
        for key in ("loss", "lm_loss", "kd_loss", "alpha", "teacher_flops"):
            assert (key in old) == (key in new) and abs(old.get(key, 0) - new.get(key, 0)) <= 1e-6, (old["step"], key)
        if "kd_loss" in old:
            assert old["loss"] == pytest.approx(
                (1 - old["alpha"]) * old["lm_loss"] + old["alpha"] * old["kd_loss"], rel=1e-5
            )
    assert resumed.final_val_loss == pytest.approx(straight.final_val_loss, abs=1e-6)


def _auto(out: Path, cache_dir: Path, teacher: Path, **train: object) -> dict:
    return validate_config(
        student_run(
            out,
            cache_dir,
            {"path": str(teacher), "cross_tokenizer": "alm", "schedule": "auto", "steps": 1.0},
            **{"max_steps": 12, "eval_steps": 3, "save_steps": 2, **train},
        )
    )


def _evals(out: Path) -> list[dict]:
    return [e for e in read_metrics(out / "metrics.jsonl") if "val_loss" in e]


def _span_nll_by_hand(model_dir: Path, teacher_dir: Path, run: Path) -> tuple[float, float, int]:
    """(student, teacher) mean NLL per aligned span of the run's validation blocks, and the block count: each model
    on its own tokens of each block, alone (no padding), log-likelihoods summed span by span in Python."""
    config = load_config(run / "config.resolved.yaml")
    corpus = prepare_corpus(config.data)
    student_tok, teacher_tok = load_tokenizer(corpus.tokenizer_dir), load_tokenizer(teacher_dir)
    aligner = Aligner(student_tok, teacher_tok, TEACHER_LEN)
    val = PackedBlocks(corpus.val_path, corpus.dtype, 32, None)
    student, teacher = load_lm(model_dir).eval(), load_lm(teacher_dir).eval()
    nll = {"student": 0.0, "teacher": 0.0}
    spans = 0
    for b in range(len(val)):
        ids = val[b]["input_ids"]
        aligned = aligner.align(ids.numpy())
        t_ids = torch.from_numpy(aligned.teacher_ids)
        with torch.no_grad():
            s_lp = student(input_ids=ids[None]).logits[0].double().log_softmax(-1)  # (T, V_s)
            t_lp = teacher(input_ids=t_ids[None]).logits[0].double().log_softmax(-1)  # (n_t, V_t)
        for row, first in enumerate(aligned.span_start.tolist()):
            if first < 0:
                continue
            spans += 1
            nll["student"] -= sum(float(s_lp[k - 1, ids[k]]) for k in range(first, row + 1))
            lo, hi = aligned.span_teacher[row].tolist()
            nll["teacher"] -= sum(float(t_lp[j - 1, t_ids[j]]) for j in range(lo, hi + 1))
    return nll["student"] / spans, nll["teacher"] / spans, len(val)


def test_auto_decides_on_the_validation_spans(tmp_path, cache_dir, other_teacher, teacher_calls):
    """Across tokenizers the auto rule compares both models' NLL per aligned span of the validation split (the
    teacher's once), not of the training batches the teacher may have trained on; the switch and the KD weight follow
    the evaluations, and the teacher's FLOPs are its training forwards up to the switch plus one validation pass."""
    run = tmp_path / "auto"
    result = pretrain(_auto(run, cache_dir, other_teacher))
    events, evals = _train_events(run), _evals(run)
    assert [e["step"] for e in evals] == [0, 3, 6, 9, 12]
    assert not any(
        "student_span_nll" in e or "teacher_span_nll" in e for e in events
    )  # nothing decided on training batches
    student, teacher, val_blocks = _span_nll_by_hand(result.model_dir, other_teacher, run)
    assert all(e["val_teacher_span_nll"] == pytest.approx(teacher, rel=1e-5) for e in evals)  # one value, computed once
    assert evals[-1]["val_student_span_nll"] == pytest.approx(
        student, rel=1e-5
    )  # the final model on the validation spans
    switch = next(e["step"] for e in evals if e["val_student_span_nll"] <= e["val_teacher_span_nll"])
    assert 0 < switch < 12
    for event in events:  # the event of step k logs step t = k − 1: α = schedule × the gap of the latest evaluation ≤ t
        step = event["step"]
        if step <= switch:
            latest = max((e for e in evals if e["step"] <= step - 1), key=lambda e: e["step"])
            gap = min(max((latest["val_student_span_nll"] - latest["val_teacher_span_nll"]) / GAP_MARGIN, 0.0), 1.0)
            assert event["alpha"] == pytest.approx((1 - (step - 1) / 12) * gap, abs=1e-6) and "kd_loss" in event
        else:
            assert event["alpha"] == 0.0 and "kd_loss" not in event
    calls, refs = teacher_calls
    assert (
        len(calls) == -(-val_blocks // 32) + switch and refs[0]() is None
    )  # one validation pass, nothing after the switch
    fwd = flops_per_token(load_lm(other_teacher), TEACHER_LEN).forward
    for event in events:  # by hand: training forwards on its own tokens up to the switch + the validation pass
        assert (
            event["teacher_flops"]
            == min(event["step"], switch) * SEQUENCES_PER_STEP * TEACHER_LEN * fwd + val_blocks * TEACHER_LEN * fwd
        )


def test_auto_resumes_exactly_across_the_decision(tmp_path, cache_dir, other_teacher):
    """Checkpoints every 2 steps, evaluations every 3: the switch, the latest gap and the teacher's validation span
    NLL come from objective.json, and every logged number of the resumed run equals the straight run's bit for bit."""
    pretrain(_auto(tmp_path / "straight", cache_dir, other_teacher))
    expected, expected_evals = _train_events(tmp_path / "straight"), _evals(tmp_path / "straight")
    switch = next(e["step"] for e in expected_evals if e["val_student_span_nll"] <= e["val_teacher_span_nll"])
    for crash, name in ((max(switch - 1, 3), "before"), (switch + 3, "after")):
        crashed = _auto(tmp_path / name, cache_dir, other_teacher)
        with pytest.raises(RuntimeError, match="simulated crash"):
            pretrain(crashed, callbacks=[CrashAt(crash)])
        pretrain(crashed, resume=True)
        untimed = [{k: v for k, v in e.items() if k not in TIMING} for e in _train_events(tmp_path / name)]
        assert untimed == [{k: v for k, v in e.items() if k not in TIMING} for e in expected], name
        got = _evals(tmp_path / name)
        keys = ("step", "val_loss", "val_student_span_nll", "val_teacher_span_nll")
        assert [[e[k] for k in keys] for e in got] == [[e[k] for k in keys] for e in expected_evals], name


def test_a_teacher_normalising_some_characters_is_refused_before_training(
    tmp_path, cache_dir, other_teacher, capsys, monkeypatch
):
    """Its tokenizer writes "{" as "(" (the start-up probe has no "{"): refused in one line before any block is
    aligned."""
    teacher = tmp_path / "teacher"
    shutil.copytree(other_teacher, teacher)
    spec = json.loads((teacher / "tokenizer.json").read_text())
    spec["normalizer"] = {"type": "Replace", "pattern": {"String": "{"}, "content": "("}
    (teacher / "tokenizer.json").write_text(json.dumps(spec))
    aligned = []
    original = CrossTokenizerBlocks.__getitem__
    monkeypatch.setattr(
        CrossTokenizerBlocks, "__getitem__", lambda self, index: aligned.append(index) or original(self, index)
    )
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            student_run(
                tmp_path / "s", cache_dir, {"path": str(teacher), "cross_tokenizer": "alm"}, max_steps=2, eval_steps=2
            )
        )
    )
    capsys.readouterr()
    assert main(["pretrain", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("kinherit pretrain: error: teacher tokenizer") and "Traceback" not in "\n".join(err)
    assert "does not keep the text as is (its tokens spell '(' for '{')" in err[-1]
    assert aligned == []  # today's start-up probe let it through and the first aligned block failed mid-run

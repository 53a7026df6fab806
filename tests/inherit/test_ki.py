"""End to end on the tiny real corpus: a KI student beats its from-scratch twin; the teacher is accounted for,
stops running at T and is freed; a KI student teaches the next, larger one; masked-LM KI runs."""

import pytest
import torch

from kinherit.config import validate_config
from kinherit.hf_folder import load_lm
from kinherit.metrics.flops import flops_per_token
from kinherit.metrics.log import read_metrics
from kinherit.train.pretrain import pretrain
from tests.inherit.conftest import student_run

STEPS, HORIZON = 20, 10
TOKENS_PER_STEP = 8 * 32


def _train_events(out):
    return [e for e in read_metrics(out / "metrics.jsonl") if "loss" in e]


def test_ki_student_beats_scratch_and_counts_the_teacher(tmp_path, cache_dir, teacher_dir, teacher_calls):
    scratch = pretrain(validate_config(student_run(tmp_path / "scratch", cache_dir)))
    teacher = {
        "path": str(teacher_dir),
        "schedule": "linear",
        "steps": HORIZON,
        "temperature": 2.0,
    }  # α₀ = 1, full vocabulary
    ki = pretrain(validate_config(student_run(tmp_path / "ki", cache_dir, teacher)))
    print(f"\nval loss after {STEPS} steps: KI {ki.final_val_loss:.4f} vs scratch {scratch.final_val_loss:.4f}")
    assert ki.final_val_loss < scratch.final_val_loss

    calls, refs = teacher_calls
    assert len(calls) == HORIZON  # one forward per step while α > 0, none after T (and none in evaluation)
    assert len(refs) == 1 and refs[0]() is None  # released: no reference left anywhere

    teacher_fwd = flops_per_token(load_lm(teacher_dir), 32).forward
    student_train = 3 * flops_per_token(load_lm(ki.model_dir), 32).forward
    for event in _train_events(tmp_path / "ki"):
        step = event["step"]
        assert event["alpha"] == pytest.approx(max(1 - (step - 1) / HORIZON, 0.0))  # α of the step just taken
        assert ("kd_loss" in event) == (step <= HORIZON)
        if step <= HORIZON:
            assert event["loss"] == pytest.approx(
                (1 - event["alpha"]) * event["lm_loss"] + event["alpha"] * event["kd_loss"], rel=1e-5
            )
        else:
            assert event["loss"] == event["lm_loss"]
        tokens = step * TOKENS_PER_STEP
        assert event["teacher_flops"] == min(step, HORIZON) * TOKENS_PER_STEP * teacher_fwd
        assert event["flops"] == tokens * student_train + event["teacher_flops"]


def test_lifelong_chain_a_to_b_to_c(tmp_path, cache_dir, teacher_dir):
    b = pretrain(
        validate_config(
            student_run(
                tmp_path / "b",
                cache_dir,
                {"path": str(teacher_dir), "schedule": "linear", "steps": 4},
                max_steps=6,
                eval_steps=6,
            )
        )
    )
    c_config = student_run(
        tmp_path / "c",
        cache_dir,
        {"path": str(b.model_dir), "schedule": "linear", "steps": 3, "top_k": 10},
        max_steps=4,
        eval_steps=4,
    )
    c_config["model"].update(hidden_size=96, num_layers=3, intermediate_size=192)
    pretrain(validate_config(c_config))
    b_fwd = flops_per_token(load_lm(b.model_dir), 32).forward
    events = _train_events(tmp_path / "c")
    assert [e["step"] for e in events if "kd_loss" in e] == [1, 2, 3]
    assert events[-1]["teacher_flops"] == 3 * TOKENS_PER_STEP * b_fwd
    assert load_lm(tmp_path / "c" / "model").config.hidden_size == 96


def test_masked_lm_ki_distils_on_masked_positions(tmp_path, cache_dir):
    bert_teacher = pretrain(
        validate_config(student_run(tmp_path / "bt", cache_dir, family="bert", max_steps=2, eval_steps=2))
    )
    teacher = {"path": str(bert_teacher.model_dir), "schedule": "heaviside", "steps": 2, "top_k": 5}
    pretrain(
        validate_config(student_run(tmp_path / "bs", cache_dir, teacher, family="bert", max_steps=3, eval_steps=3))
    )
    events = _train_events(tmp_path / "bs")
    assert [e["alpha"] for e in events] == [1.0, 1.0, 0.0]
    assert all(torch.isfinite(torch.tensor(e["kd_loss"])) for e in events[:2]) and "kd_loss" not in events[2]
    assert events[0]["loss"] == pytest.approx(events[0]["kd_loss"])  # heaviside: pure KD until T


def test_mixture_of_experts_student_and_teacher(tmp_path, cache_dir, teacher_dir):
    """A mixtral student inherits from the dense teacher (its router loss logged alongside); then it teaches a dense
    student, whose teacher FLOPs count the MoE teacher's active weights (router + k of E experts), not all experts."""
    moe = pretrain(
        validate_config(
            student_run(
                tmp_path / "moe",
                cache_dir,
                {"path": str(teacher_dir), "schedule": "linear", "steps": 2},
                family="mixtral",
                max_steps=3,
                eval_steps=3,
                save_steps=3,
            )
        )
    )
    events = _train_events(tmp_path / "moe")
    assert [e["step"] for e in events if "kd_loss" in e] == [1, 2] and all("aux_loss" in e for e in events)
    for event in events[:2]:
        assert event["loss"] == pytest.approx(
            (1 - event["alpha"]) * event["lm_loss"] + event["alpha"] * event["kd_loss"], rel=1e-5
        )

    pretrain(
        validate_config(
            student_run(
                tmp_path / "dense",
                cache_dir,
                {"path": str(moe.model_dir), "schedule": "linear", "steps": 2},
                max_steps=2,
                eval_steps=2,
                save_steps=2,
            )
        )
    )
    teacher = load_lm(moe.model_dir)
    active = flops_per_token(teacher, 32)
    every_expert = sum(p.numel() for n, p in teacher.named_parameters() if "experts" in n)
    matrices = sum(p.numel() for n, p in teacher.named_parameters() if p.dim() > 1 and "embed" not in n)
    head = teacher.config.vocab_size * teacher.config.hidden_size  # tied: a matmul all the same
    assert active.matmul_params == matrices + head - every_expert // 2  # k = 2 of E = 4 experts run per token
    assert _train_events(tmp_path / "dense")[-1]["teacher_flops"] == 2 * TOKENS_PER_STEP * active.forward


def test_teacher_loss_selects_the_kd_loss(tmp_path, cache_dir, teacher_dir):
    """Same seed, same first batch: the LM loss of step 1 is the same, the KD term is the chosen divergence's."""
    first = {}
    for name in ("forward_kl", "reverse_kl"):
        teacher = {"path": str(teacher_dir), "schedule": "linear", "steps": 1, "loss": name}
        pretrain(validate_config(student_run(tmp_path / name, cache_dir, teacher, max_steps=1, eval_steps=1)))
        first[name] = _train_events(tmp_path / name)[0]
    assert first["forward_kl"]["lm_loss"] == first["reverse_kl"]["lm_loss"]
    assert 0 < first["reverse_kl"]["kd_loss"] != pytest.approx(first["forward_kl"]["kd_loss"], rel=1e-3)

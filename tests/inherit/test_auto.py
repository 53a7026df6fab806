"""`teacher.steps: auto`: inheritance stops itself once the student's LM loss reaches the teacher's."""

import pytest
import torch

from kinherit.config import validate_config
from kinherit.errors import KinheritError
from kinherit.inherit.losses import lm_loss
from kinherit.inherit.schedules import GAP_MARGIN, AutoStop, gap_weight
from kinherit.metrics.flops import flops_per_token
from kinherit.metrics.log import read_metrics
from kinherit.hf_folder import load_lm
from kinherit.train.pretrain import pretrain
from tests.conftest import CrashAt, _tiny_run
from tests.inherit.conftest import student_run

TOKENS_PER_STEP = 8 * 32



@pytest.fixture(scope="module")
def weak_teacher(tmp_path_factory, cache_dir):
    """A teacher trained 3 steps: a fresh, twice-as-wide student catches up with it within a few steps."""
    out = tmp_path_factory.mktemp("auto") / "teacher"
    return pretrain(validate_config(_tiny_run(out, cache_dir, "llama", max_steps=3, eval_steps=3, save_steps=3,
                                              logging_steps=3))).model_dir


def _events(out):
    return [e for e in read_metrics(out / "metrics.jsonl") if "loss" in e]


def _config(out, cache_dir, teacher, **train):
    return validate_config(student_run(out, cache_dir, {"path": str(teacher), "steps": "auto"},
                                       **{"max_steps": 12, "eval_steps": 12, "save_steps": 2, **train}))


def test_auto_stop_rule():
    rule = AutoStop()
    rule.observe(3, student_lm=5.0, teacher_lm=4.0)
    assert rule.switch_step is None and not rule.stopped(100)
    rule.observe(5, student_lm=4.0, teacher_lm=4.0)
    rule.observe(7, student_lm=3.0, teacher_lm=4.0)  # the first crossing decides
    assert rule.switch_step == 5 and not rule.stopped(4) and rule.stopped(5) and rule.stopped(6)


def test_gap_weight():
    weight = gap_weight(torch.tensor([5.0, 4.2, 4.0, 3.5]), torch.tensor(4.0))
    assert weight.tolist() == pytest.approx([1.0, 0.2 / GAP_MARGIN, 0.0, 0.0])


def test_a_student_as_good_as_its_teacher_learns_from_the_data_alone(tmp_path, cache_dir, weak_teacher):
    """Right after an exact growth the student *is* the teacher: the gap is 0, so α is 0 from the first step and
    inheritance stops at the first log; grown + KI then costs a few teacher forwards and changes nothing else."""
    raw = student_run(tmp_path / "same", cache_dir, {"path": str(weak_teacher), "steps": "auto"},
                      max_steps=6, eval_steps=6, save_steps=6, logging_steps=2)
    raw["model"] = {"from": str(weak_teacher)}
    raw["data"]["tokenizer"] = {"path": str(weak_teacher)}
    pretrain(validate_config(raw))
    events = _events(tmp_path / "same")
    assert all(e["alpha"] <= 1e-5 for e in events)  # 0 up to the round-off between the two loss computations
    assert events[-1]["teacher_flops"] == 2 * TOKENS_PER_STEP * flops_per_token(load_lm(weak_teacher), 32).forward


def test_teacher_lm_loss_matches_the_models_own_loss(weak_teacher):
    model = load_lm(weak_teacher).eval()
    ids = torch.randint(0, 500, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids)
    assert lm_loss(out.logits, ids, masked=False).item() == pytest.approx(out.loss.item(), rel=1e-6)


def test_alpha_is_zero_and_the_teacher_idle_from_the_switch_on(tmp_path, cache_dir, weak_teacher, teacher_calls):
    pretrain(_config(tmp_path / "auto", cache_dir, weak_teacher))
    events = _events(tmp_path / "auto")
    switch = next(e["step"] for e in events if e["lm_loss"] <= e.get("teacher_lm_loss", float("inf")))
    assert 1 < switch < 12
    calls, refs = teacher_calls
    assert len(calls) == switch and refs[0]() is None  # no teacher forward after the switch, and it is released
    teacher_fwd = flops_per_token(load_lm(weak_teacher), 32).forward
    for event in events:
        step = event["step"]  # the event of step k logs the step just taken, t = k − 1
        if step <= switch:  # the schedule's α, weighted by the teacher/student gap of that step's batch
            gap = min(max((event["lm_loss"] - event["teacher_lm_loss"]) / GAP_MARGIN, 0.0), 1.0)
            assert event["alpha"] == pytest.approx((1 - (step - 1) / 12) * gap, abs=1e-6) and "kd_loss" in event
            assert (event["lm_loss"] > event["teacher_lm_loss"]) == (step < switch)
        else:
            assert event["alpha"] == 0.0 and "kd_loss" not in event and "teacher_lm_loss" not in event
        assert event["teacher_flops"] == min(step, switch) * TOKENS_PER_STEP * teacher_fwd


def test_resume_restores_the_switch(tmp_path, cache_dir, weak_teacher, teacher_calls):
    pretrain(_config(tmp_path / "straight", cache_dir, weak_teacher))
    expected = _events(tmp_path / "straight")
    switch = next(e["step"] for e in expected if e["lm_loss"] <= e.get("teacher_lm_loss", float("inf")))
    crash = switch + 2 + switch % 2  # the checkpoint before the crash (every 2 steps) is after the switch
    crashed = _config(tmp_path / "crashed", cache_dir, weak_teacher)
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(crashed, callbacks=[CrashAt(crash)])
    calls, _ = teacher_calls
    before = len(calls)
    pretrain(crashed, resume=True)
    assert len(calls) == before  # the resumed run knows inheritance has stopped: the teacher never runs again
    resumed = _events(tmp_path / "crashed")
    assert [e["step"] for e in resumed] == [e["step"] for e in expected]
    for old, new in zip(expected, resumed):
        for key in ("loss", "lm_loss", "alpha", "teacher_flops", "flops"):
            assert abs(old[key] - new[key]) <= 1e-6, (old["step"], key, old[key], new[key])


def test_auto_needs_an_online_teacher_and_max_steps(tmp_path, cache_dir, weak_teacher):
    with pytest.raises(KinheritError, match="teacher.steps: auto .* set teacher.path, not teacher.cache"):
        validate_config(student_run(tmp_path / "c", cache_dir, {"cache": str(tmp_path), "steps": "auto"}))
    with pytest.raises(KinheritError, match="needs train.max_steps"):
        pretrain(validate_config(student_run(tmp_path / "e", cache_dir, {"path": str(weak_teacher), "steps": "auto"},
                                             max_steps=-1, num_train_epochs=1)))

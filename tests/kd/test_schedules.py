import json

import pytest
import torch

from kinherit.config import validate_config
from kinherit.errors import KinheritError
from kinherit.kd.schedules import SCHEDULES, resolve_horizon

T = 40


@pytest.mark.parametrize(
    ("name", "formula"),
    [
        ("linear", lambda t, a0: a0 * max(1 - t / T, 0)),
        ("heaviside", lambda t, a0: a0 if t < T else 0.0),
        ("constant", lambda t, a0: a0),
        ("auto", lambda t, a0: a0 * max(1 - t / T, 0)),  # before its state saw anything
    ],
)
def test_alpha_follows_its_formula(name, formula):
    schedule = SCHEDULES.lookup(name)
    for alpha0 in (1.0, 0.5):
        for t in (0, 1, 10, 20, 39, 40, 41, 100):
            assert schedule.alpha(t, alpha0, T) == pytest.approx(formula(t, alpha0), abs=1e-12), (name, t)
    assert set(SCHEDULES) == {"linear", "heaviside", "constant", "auto"}


def test_linear_values_at_given_steps():
    linear = SCHEDULES.lookup("linear")
    assert [linear.alpha(t, 1.0, T) for t in (0, 10, 20, 30, 40, 50)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]


def test_teacher_steps_count_the_steps_with_positive_alpha():
    for name in SCHEDULES:
        schedule = SCHEDULES.lookup(name)
        for step in (0, 5, 40, 41, 90):
            expected = sum(schedule.alpha(t, 1.0, T) > 0 for t in range(step))
            assert schedule.teacher_steps(step, 1.0, T) == expected, (name, step)
            assert schedule.teacher_steps(step, 0.0, T) == 0


def test_horizon_is_a_step_count_or_a_fraction_of_max_steps():
    assert resolve_horizon(7, 100) == 7
    assert resolve_horizon(0.5, 100) == 50
    assert resolve_horizon(1.0, 30) == 30
    assert resolve_horizon(0.001, 30) == 1


def test_unknown_schedule_is_a_config_error():
    with pytest.raises(KinheritError, match="unknown schedule 'cosine'; choose one of linear, heaviside, constant"):
        validate_config({"teacher": {"path": "x", "schedule": "cosine"}})


def test_a_schedule_that_claims_to_end_but_does_not_is_refused_at_registration():
    from kinherit.kd.schedules import Schedule, _check_ends

    with pytest.raises(ValueError, match="claims `ends`"):
        _check_ends(Schedule("leaky", lambda t, a0, T: a0 * 0.5**t, ends=True))
    with pytest.raises(ValueError, match=r"\[0, α₀\]"):
        _check_ends(Schedule("negative", lambda t, a0, T: -a0, ends=False))
    _check_ends(Schedule("fine", lambda t, a0, T: a0 if t < T else 0.0, ends=True))


def test_alpha_holds_the_schedule_and_its_state_in_one_place():
    from kinherit.kd.schedules import Alpha

    alpha = Alpha(SCHEDULES.lookup("auto"), 1.0, T)
    assert alpha(10) == pytest.approx(0.75) and not alpha.done(10)
    alpha.observe_validation(12, student=4.0, teacher=4.5)  # the student already caught up: inheritance stops at 12
    assert alpha(11) == pytest.approx(1 - 11 / T) and alpha(12) == 0.0 and alpha.done(12)
    assert alpha.teacher_steps(30) == 12
    restored = Alpha(SCHEDULES.lookup("auto"), 1.0, T)
    restored.load_state_dict(alpha.state_dict())
    assert restored(12) == 0.0 and restored.teacher_steps(30) == 12
    plain = Alpha(SCHEDULES.lookup("linear"), 1.0, T)
    plain.observe_validation(12, student=4.0, teacher=4.5)  # a stateless schedule: observations change nothing
    assert (
        plain(12) == pytest.approx(1 - 12 / T) and plain.done(T) and not plain.done(T - 1) and plain.state_dict() == {}
    )


@pytest.mark.parametrize("name", [name for name, schedule in SCHEDULES.items() if schedule.state is not None])
def test_a_stateful_schedule_starts_as_its_formula_and_a_checkpoint_restores_it(name):
    from kinherit.kd.schedules import Alpha

    alpha = Alpha(SCHEDULES.lookup(name), 1.0, T)
    assert [alpha.weight(t) for t in range(2 * T)] == [SCHEDULES[name].alpha(t, 1.0, T) for t in range(2 * T)]
    alpha.observe_validation(4, student=4.2, teacher=4.0)
    alpha.observe_batch(torch.tensor(4.3), torch.tensor(4.0))
    alpha.observe_batch(torch.tensor(4.1), torch.tensor(4.0))
    restored = Alpha(SCHEDULES.lookup(name), 1.0, T)
    restored.load_state_dict(json.loads(json.dumps(alpha.state_dict())))
    assert restored.state_dict() == alpha.state_dict()
    assert [float(restored.weight(t)) for t in range(2 * T)] == [float(alpha.weight(t)) for t in range(2 * T)]
    alpha.observe_validation(9, student=3.9, teacher=4.0)
    restored.load_state_dict(json.loads(json.dumps(alpha.state_dict())))
    assert [float(restored.weight(t)) for t in range(2 * T)] == [float(alpha.weight(t)) for t in range(2 * T)]
    assert [restored.done(t) for t in range(2 * T)] == [alpha.done(t) for t in range(2 * T)]


def test_steps_auto_of_earlier_versions_reads_as_schedule_auto_over_the_whole_run():
    from kinherit.config import load_config

    new = validate_config({"teacher": {"path": "x", "schedule": "auto", "steps": 1.0}})
    assert new.teacher.stateful and resolve_horizon(new.teacher.steps, 400) == 400
    for old in ({"path": "x", "steps": "auto"}, {"path": "x", "schedule": "linear", "steps": "auto"}):
        assert validate_config({"teacher": old}) == new
    assert load_config(None, ["--teacher.path=x", "--teacher.steps=auto"]) == new
    with pytest.raises(
        KinheritError,
        match="config key teacher.steps: auto is now teacher.schedule: auto .* "
        "teacher.schedule heaviside: set teacher.schedule: auto and teacher.steps: 1.0",
    ):
        validate_config({"teacher": {"path": "x", "schedule": "heaviside", "steps": "auto"}})

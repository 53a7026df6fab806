"""KI fixtures: one small trained teacher per session, and student configs on the shared tiny corpus."""

from __future__ import annotations

import shutil
import weakref
from pathlib import Path
from typing import Any

import pytest

from kinherit.config import validate_config
from kinherit.inherit.teacher import TeacherSpec
from kinherit.train.pretrain import pretrain
from tests.conftest import _tiny_run

TEACHER_STEPS = 80
STUDENT = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128}


def student_run(
    out: Path, cache: Path, teacher: dict[str, Any] | None = None, family: str = "llama", **train: Any
) -> dict[str, Any]:
    """A student twice the teacher's width; `teacher` is the config's teacher section (None: self-learning)."""
    config = _tiny_run(
        Path(out), cache, family, **{"max_steps": 20, "eval_steps": 20, "save_steps": 20, "logging_steps": 1, **train}
    )
    config["model"].update(STUDENT)
    if teacher is not None:
        config["teacher"] = teacher
    return config


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """A tiny llama trained long enough to beat a fresh student's first steps."""
    out = tmp_path_factory.mktemp("ki") / "teacher"
    config = _tiny_run(
        out,
        cache_dir,
        "llama",
        max_steps=TEACHER_STEPS,
        eval_steps=TEACHER_STEPS,
        save_steps=TEACHER_STEPS,
        logging_steps=TEACHER_STEPS,
    )
    return pretrain(validate_config(config)).model_dir


BEHIND = "checkpoint-100"
"""The weak teacher's checkpoint the mid-run-switch tests start their student from."""


@pytest.fixture(scope="session")
def weak_teacher(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """A teacher of the students' size trained 120 steps (validation loss ≈ 5.08, below the corpus's unigram baseline,
    5.32): a student started from its own step-100 checkpoint (`BEHIND`, ≈ 5.10) catches up within 12 steps."""
    out = tmp_path_factory.mktemp("weak") / "teacher"
    config = _tiny_run(out, cache_dir, "llama", max_steps=120, eval_steps=120, save_steps=100, logging_steps=120)
    config["model"].update(STUDENT)
    model = pretrain(validate_config(config)).model_dir
    for name in ("tokenizer.json", "tokenizer_config.json"):  # model.from checks the tokenizer the model trained with
        shutil.copy(model / name, out / "checkpoints" / BEHIND / name)
    return model


def behind(teacher: Path) -> Path:
    """The weak teacher's step-100 checkpoint, a student's `model.from`."""
    return teacher.parent / "checkpoints" / BEHIND


@pytest.fixture()
def teacher_calls(monkeypatch):
    """Counts teacher forward passes and keeps weak references to every loaded teacher."""
    calls, refs = [], []
    original = TeacherSpec.load

    def load(self):
        model = original(self)
        model.register_forward_hook(lambda *args: calls.append(1))
        refs.append(weakref.ref(model))
        return model

    monkeypatch.setattr(TeacherSpec, "load", load)
    return calls, refs

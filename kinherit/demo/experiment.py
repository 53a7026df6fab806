"""The inheritance experiment behind `kinherit demo` and `bench/efficiency.py`.

    tokenizer + corpus → pre-train a small teacher → grow it to the student shape (exact clone + identity)
    → four students on the same data, steps and seed:
        scratch     random init, LM loss only (the baseline)
        ki          random init, knowledge inheritance from the teacher
        grown       the grown teacher as init, LM loss only
        grown_ki    the grown teacher as init, plus knowledge inheritance
    → `kinherit report` against scratch.

Runs that already finished (`<run>/model` exists) are reused, but only when their resolved config is
the one asked for (otherwise the run stops with the differing keys); interrupted ones are resumed, so
the experiment can be stopped and restarted. The students' architecture is derived once
(`ExperimentSpec.student_shape`), so scratch and the grown init have the same sizes by construction.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, field_validator

from kinherit.config import StrictModel, config_differences, read_recorded_config, validate_config
from kinherit.errors import KinheritError
from kinherit.grow.api import grow_folder
from kinherit.grow.options import GrowthOptions
from kinherit.metrics.report import Report, build_report
from kinherit.train.pretrain import pretrain, resolved_yaml
from kinherit.train.run import last_checkpoint

STUDENTS = ("scratch", "ki", "grown", "grown_ki")


class ExperimentSpec(StrictModel):
    """Sizes and budgets of one experiment; every field is a section of an ordinary run config."""

    data: dict[str, Any] = Field(
        default_factory=lambda: {
            "sources": ["stdlib"],
            "tokenizer": {"train_vocab_size": 2048},
            "seq_len": 128,
            "val_fraction": 0.02,
        }
    )
    teacher_model: dict[str, Any] = Field(
        default_factory=lambda: {
            "family": "llama",
            "hidden_size": 64,
            "num_layers": 2,
            "num_heads": 2,
            "intermediate_size": 176,
        }
    )
    student_model: dict[str, Any] = Field(
        default_factory=lambda: {"family": "llama", "hidden_size": 128, "num_layers": 4, "num_heads": 4}
    )
    """Without `intermediate_size`, the student keeps the teacher's FFN-to-hidden ratio (see `student_shape`)."""
    teacher_train: dict[str, Any] = Field(
        default_factory=lambda: {"max_steps": 500, "learning_rate": 3e-3, "eval_steps": 50}
    )
    student_train: dict[str, Any] = Field(
        default_factory=lambda: {"max_steps": 500, "learning_rate": 2e-3, "eval_steps": 50}
    )
    grown_train: dict[str, Any] = Field(default_factory=dict)
    """Overrides for the students that start from the grown teacher (none: scratch's settings, warm-up included)."""
    growth_lr_factor: float | None = None
    """The grown students' LR multiplier (None: the library's LR rule after growth, `RunConfig.growth_lr_factor`;
    1: the grown students train at their `learning_rate` as given, as a protocol that tunes it needs)."""
    inherit: dict[str, Any] = Field(
        default_factory=lambda: {"alpha0": 1.0, "schedule": "auto", "steps": 1.0, "temperature": 1.0}
    )
    """The library's defaults, written out: `schedule: auto` over the whole run (`steps: 1.0`), the KD weight
    following the teacher/student gap until the student has caught up, and τ = 1 (docs/inherit.md, "Knowledge
    inheritance from an existing teacher: measured")."""
    grown_inherit: dict[str, Any] = Field(default_factory=dict)
    """Overrides of `inherit` for grown_ki (none by default: the auto rule adapts to a student that starts at the
    teacher's loss)."""
    grow: dict[str, Any] = Field(default_factory=lambda: {"width": "clone", "depth": "identity"})
    """`kinherit grow` options (`GrowthOptions` fields; the sizes come from `student_model`, the seed from `seed`)."""
    seed: int = 0

    @field_validator("grow")
    @classmethod
    def _growth_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        GrowthOptions.of(value)  # unknown keys and operators fail here, before the teacher trains
        return value

    def student_shape(self) -> dict[str, Any]:
        """The student model section, with the FFN size (the teacher's FFN-to-hidden ratio) and the kv-heads (the
        teacher's query heads per kv-head, as `kinherit grow` keeps them) derived once when not given."""
        student = dict(self.student_model)
        teacher_kv = self.teacher_model.get("num_kv_heads")
        if student.get("num_kv_heads") is None and teacher_kv is not None:
            student["num_kv_heads"] = student["num_heads"] * teacher_kv // self.teacher_model["num_heads"]
        if student.get("intermediate_size") is None:
            teacher = self.teacher_model
            ffn, hidden = teacher.get("intermediate_size"), teacher["hidden_size"]
            if ffn is None or (ffn * student["hidden_size"]) % hidden:
                raise KinheritError(
                    "student_model needs an intermediate_size (the teacher's FFN ratio does not give an integer)"
                )
            student["intermediate_size"] = ffn * student["hidden_size"] // hidden
        return student


QUICK = ExperimentSpec(
    data={
        "sources": ["stdlib"],
        "tokenizer": {"train_vocab_size": 512},
        "seq_len": 64,
        "val_fraction": 0.1,
        "max_documents": 60,
    },
    teacher_model={"family": "llama", "hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64},
    student_model={"family": "llama", "hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128},
    teacher_train={"max_steps": 60, "learning_rate": 3e-3, "per_device_train_batch_size": 16, "eval_steps": 20},
    student_train={"max_steps": 30, "learning_rate": 3e-3, "per_device_train_batch_size": 16, "eval_steps": 10},
)


def _run_config(
    spec: ExperimentSpec,
    out: Path,
    model: dict[str, Any],
    train: dict[str, Any],
    teacher: dict[str, Any] | None = None,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    data = copy.deepcopy(spec.data)
    if cache_dir is not None:
        data.setdefault("cache_dir", cache_dir)
    config = {"out": str(out), "data": data, "model": model, "train": {"seed": spec.seed, **train}}
    if "from" in model and spec.growth_lr_factor is not None:
        config["growth_lr_factor"] = spec.growth_lr_factor
    if teacher is not None:
        config["teacher"] = teacher
    return config


def _refuse_changed(what: str, folder: Path, old: Any, new: Any) -> None:
    changed = [f"{key}: {was!r} -> {now!r}" for key, was, now in config_differences(old, new)]
    if changed:
        raise KinheritError(
            f"{folder} holds a {what} made with other settings ({'; '.join(changed[:3])}); "
            "delete it or pass another --out"
        )


def train_run(raw: dict[str, Any]) -> Path:
    """Pre-train the run config `raw` (a `kinherit pretrain` config as a dict) and return its model folder.

    A finished run in `raw["out"]` is reused when it was made with this very config and refused (KinheritError naming
    the changed keys) when not; an interrupted run resumes from its last checkpoint. The experiment runner and the
    benches train every run through it."""
    config = validate_config(raw)
    out = Path(config.out)
    recorded = out / "config.resolved.yaml"
    if (out / "model" / "config.json").is_file() or recorded.is_file():
        old = read_recorded_config(recorded) if recorded.is_file() else None
        _refuse_changed("run", out, old, yaml.safe_load(resolved_yaml(config)))
    if (out / "model" / "config.json").is_file():
        print(f"  reusing finished run {out}", flush=True)
        return out / "model"
    return pretrain(config, resume=last_checkpoint(out) is not None).model_dir


def _grown_init(spec: ExperimentSpec, teacher_dir: Path, out: Path) -> Path:
    """Grow the teacher into the student shape (an exact growth; `grow_folder` refuses anything else)."""
    student = spec.student_shape()
    shape = {k: student.get(k) for k in ("hidden_size", "intermediate_size", "num_heads", "num_kv_heads", "num_layers")}
    options = GrowthOptions.of({**shape, "seed": spec.seed, **spec.grow})
    if (out / "growth.json").is_file():
        recorded = json.loads((out / "growth.json").read_text())
        _refuse_changed(
            "grown model",
            out,
            {"source": recorded.get("source"), **GrowthOptions.of(recorded.get("options", {})).model_dump()},
            {"source": str(teacher_dir.resolve()), **options.model_dump()},
        )
        if not recorded["plan"]["exact_claimed"]:
            raise KinheritError(f"{out} holds a growth that is not exact; the experiment needs an exact one")
        return out
    report = grow_folder(teacher_dir, out, options)
    if not report.exact_claimed:
        raise KinheritError(f"the experiment needs an exact growth, but {spec.grow} is not one")
    return out


def run_experiment(
    spec: ExperimentSpec,
    out: str | Path,
    cache_dir: str | None = None,
    students: tuple[str, ...] = STUDENTS,
    shared: str | Path | None = None,
    share: frozenset[str] = frozenset(),
) -> Report:
    """Train the teacher and `students` under `out`, then write `out/report` (baseline: scratch).

    Artifacts named in `share` ("teacher", "grown-init", "scratch") live in `shared` instead, so a
    sweep over settings that leave them unchanged trains them once.
    """
    out = Path(out)

    def home(name: str) -> Path:
        return (Path(shared) if shared is not None and name in share else out) / name

    students = tuple(name for name in STUDENTS if name in set(students) | {"scratch"})
    total = 3 + len(students)
    stage = iter(range(1, total + 1))
    print(f"[{next(stage)}/{total}] teacher: pre-train the small model", flush=True)
    teacher_dir = train_run(
        _run_config(spec, home("teacher"), spec.teacher_model, spec.teacher_train, cache_dir=cache_dir)
    )
    print(f"[{next(stage)}/{total}] grow the teacher to the student shape ({spec.grow})", flush=True)
    grown_dir = _grown_init(spec, teacher_dir, home("grown-init"))
    teacher = {"path": str(teacher_dir), **spec.inherit}
    grown_model, grown_train = {"from": str(grown_dir)}, {**spec.student_train, **spec.grown_train}
    plans = {
        "scratch": (spec.student_shape(), spec.student_train, None),
        "ki": (spec.student_shape(), spec.student_train, teacher),
        "grown": (grown_model, grown_train, None),
        "grown_ki": (grown_model, grown_train, {**teacher, **spec.grown_inherit}),
    }
    folders = {name: home(name) for name in students}
    for name in students:
        model, train, ki = plans[name]
        print(f"[{next(stage)}/{total}] student {name!r}", flush=True)
        train_run(_run_config(spec, folders[name], model, train, ki, cache_dir))
    print(f"[{next(stage)}/{total}] report", flush=True)
    return build_report(list(folders.values()), out / "report", baseline=folders["scratch"])

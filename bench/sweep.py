"""Sweep one experiment setting and compare the compute saved (the tuning behind the demo's defaults).

    python -m bench.sweep --param inherit.steps --values "[0.25, 0.5, 1.0]" --students ki grown_ki
    python -m bench.sweep --param grown_train.learning_rate --values "[5e-4, 1e-3, 2e-3]" --students grown grown_ki
    python -m bench.sweep --param grow.noise_db --values "[null, 30, 20]" --students grown

The teacher, the grown init and the scratch baseline are trained once (in OUT/shared) unless the
swept setting changes them; each value gets its own folder and report. Prints one table.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.protocol import model_param_counts, tokens_per_param, tokens_per_step
from kinherit.config import read_yaml
from kinherit.demo.experiment import QUICK, STUDENTS, ExperimentSpec, run_experiment

# which trained artifacts a setting leaves unchanged, so the sweep trains them once (in OUT/shared)
UNCHANGED_BY = {
    "inherit": {"teacher", "grown-init", "scratch"},
    "grown_inherit": {"teacher", "grown-init", "scratch"},
    "grown_train": {"teacher", "grown-init", "scratch"},
    "grow": {"teacher", "scratch"},
    "student_train": {"teacher", "grown-init"},
    "student_model": {"teacher"},
    "teacher_train": {"scratch"},
    "teacher_model": {"scratch"},
}


def _with(spec: ExperimentSpec, dotted: str, value: Any) -> ExperimentSpec:
    section, _, key = dotted.partition(".")
    raw = spec.model_dump()
    if key:
        raw[section] = {**raw[section], key: value}
    else:
        raw[section] = value
    return ExperimentSpec.model_validate(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--param", required=True, help="dotted ExperimentSpec field, e.g. inherit.steps")
    parser.add_argument("--values", required=True, help="YAML list of values")
    parser.add_argument("--students", nargs="+", default=list(STUDENTS), choices=STUDENTS)
    parser.add_argument("--spec", help="YAML ExperimentSpec to start from (default: the demo's)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="runs/sweep")
    args = parser.parse_args()

    base = (
        QUICK
        if args.quick
        else ExperimentSpec.model_validate(read_yaml(Path(args.spec).read_text()) if args.spec else {})
    )
    share = frozenset(UNCHANGED_BY.get(args.param.split(".")[0], set()))
    rows = []
    for value in read_yaml(args.values):
        folder = Path(args.out) / f"{args.param}={value}"
        spec = _with(base, args.param, value)
        report = run_experiment(
            spec, folder, students=tuple(args.students), shared=Path(args.out) / "shared", share=share
        )
        scratch = (Path(args.out) / "shared" if "scratch" in share else folder) / "scratch" / "model"
        tpp = tokens_per_param(
            int(spec.student_train["max_steps"]),
            tokens_per_step(spec.student_train, spec.data),
            model_param_counts(scratch),
        )
        for result in report.results:
            if result.name in args.students and result.name != "scratch":
                rows.append((value, result, tpp))

    print(
        f"\nsweep of {args.param}; saving = FLOPs saved vs scratch to reach scratch's final val loss; "
        "tokens/param: the student's budget in tokens per parameter, non-embedding / with embeddings"
    )
    print(f"{args.param:>28} | {'run':>9} | {'tokens/param':>13} | {'final val loss':>14} | saving")
    for value, r, tpp in rows:
        saved = "not reached" if r.saving_fraction is None else f"{r.saving_fraction:.1%}"
        per_param = f"{tpp['non_embedding']:.3g} / {tpp['with_embedding']:.3g}"
        print(f"{value!s:>28} | {r.name:>9} | {per_param:>13} | {r.final_val_loss:14.4f} | {saved}")


if __name__ == "__main__":
    main()

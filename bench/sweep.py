"""Sweep one experiment setting and compare the compute saved (the tuning behind the demo's defaults).

    python bench/sweep.py --param inherit.steps --values "[0.25, 0.5, 1.0]" --students ki grown_ki
    python bench/sweep.py --param grown_train.learning_rate --values "[5e-4, 1e-3, 2e-3]" --students grown grown_ki
    python bench/sweep.py --param grow.noise_db --values "[null, 30, 20]" --students grown

The teacher, the grown init and the scratch baseline are trained once (in OUT/shared) unless the
swept setting changes them; each value gets its own folder and report. Prints one table.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kinherit.config import read_yaml
from kinherit.showcase.experiment import QUICK, STUDENTS, ExperimentSpec, run_experiment

SHARED_SAFE = ("inherit", "grown_train", "student_train")  # settings that leave teacher/grown-init/scratch alone


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

    base = QUICK if args.quick else ExperimentSpec.model_validate(read_yaml(Path(args.spec).read_text()) if args.spec else {})
    shared = Path(args.out) / "shared" if args.param.split(".")[0] in SHARED_SAFE else None
    rows = []
    for value in read_yaml(args.values):
        folder = Path(args.out) / f"{args.param}={value}"
        report = run_experiment(_with(base, args.param, value), folder, students=tuple(args.students), shared=shared)
        for result in report.results:
            if result.name in args.students and result.name != "scratch":
                rows.append((value, result))

    print(f"\nsweep of {args.param}; saving = FLOPs saved vs scratch to reach scratch's final val loss")
    print(f"{args.param:>28} | {'run':>9} | {'final val loss':>14} | saving")
    for value, r in rows:
        saved = "not reached" if r.saving_fraction is None else f"{r.saving_fraction:.1%}"
        print(f"{value!s:>28} | {r.name:>9} | {r.final_val_loss:14.4f} | {saved}")


if __name__ == "__main__":
    main()

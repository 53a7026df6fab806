"""Compute saved by inheritance, over several seeds: the demo's experiment with your sizes and corpus.

    python bench/efficiency.py [--spec configs/efficiency.yaml] [--seeds 0 1] [--out runs/efficiency] [--quick]

For each seed it trains a teacher, grows it, trains scratch / ki / grown / grown_ki students on the
same budget (see kinherit/showcase/experiment.py) and reports, per student, the mean and spread of
the FLOPs saving against scratch to reach scratch's final validation loss (teacher forward passes
counted; the teacher's own pre-training reported separately as sunk cost).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from kinherit.config import read_yaml
from kinherit.showcase.experiment import QUICK, STUDENTS, ExperimentSpec, run_experiment


def _summary(values: list[float | None]) -> str:
    reached = [v for v in values if v is not None]
    if not reached:
        return "not reached"
    spread = f" ± {statistics.stdev(reached):.1%}" if len(reached) > 1 else ""
    missing = f" ({len(values) - len(reached)} of {len(values)} not reached)" if len(reached) < len(values) else ""
    return f"{statistics.mean(reached):.1%}{spread}{missing}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", help="YAML ExperimentSpec (sections: data, teacher_model, student_model, ...)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", default="runs/efficiency")
    parser.add_argument("--quick", action="store_true", help="the demo's --quick sizes")
    args = parser.parse_args()

    base = QUICK if args.quick else ExperimentSpec.model_validate(read_yaml(Path(args.spec).read_text()) if args.spec else {})
    per_run: dict[str, dict[str, list]] = {name: {"saving": [], "final": [], "teacher_flops": []} for name in STUDENTS}
    for seed in args.seeds:
        spec = base.model_copy(update={"seed": seed})
        report = run_experiment(spec, Path(args.out) / f"seed{seed}")
        for result in report.results:
            per_run[result.name]["saving"].append(result.saving_fraction)
            per_run[result.name]["final"].append(result.final_val_loss)
            per_run[result.name]["teacher_flops"].append(result.teacher_inference_flops)

    print(f"\nseeds {args.seeds}; saving = FLOPs saved vs scratch to reach scratch's final val loss (mean ± stdev)")
    print(f"{'run':>10} | {'saving':>28} | final val loss")
    for name, values in per_run.items():
        finals = values["final"]
        spread = f" ± {statistics.stdev(finals):.3f}" if len(finals) > 1 else ""
        print(f"{name:>10} | {_summary(values['saving']):>28} | {statistics.mean(finals):.4f}{spread}")
    summary = Path(args.out) / "efficiency.json"
    summary.write_text(json.dumps({"seeds": args.seeds, "spec": base.model_dump(), "runs": per_run}, indent=2))
    print(f"written {summary}")


if __name__ == "__main__":
    main()

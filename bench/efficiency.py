"""Compute saved by inheritance, measured fairly: tuned baseline, unreported tuning seeds, ≥ 3 seeds, horizons.

    python -m bench.efficiency [--spec configs/efficiency.yaml] [--out runs/efficiency] [--quick]
        [--lr-grid 5e-4 1e-3 2e-3 4e-3] [--tune-seeds 100] [--seeds 0 1 2] [--horizon 3] [--tokens-per-param 20]

Protocol (see README, "How the savings are measured"):
1. Tuning, on seeds that are never reported: scratch and grown are each trained for the budget B
   (`student_train.max_steps`) at every peak LR of the same grid, with the same warm-up. The grid is
   extended by ×2 steps until each one's best LR (lowest mean final val loss) is interior.
   ki uses scratch's LR, grown_ki the grown one's.
2. Reporting, on fresh seeds: teacher → exact growth → scratch / ki / grown / grown_ki, each trained
   for H·B steps (cosine over H·B), at the tuned LRs.
3. Horizons h = 1..H: saving to reach scratch's loss after h·B steps, the loss at equal total FLOPs
   with the teacher's own pre-training counted, and whether grown stays at or below scratch at every
   evaluation. Mean ± standard deviation over every seed (a seed that never reached the target counts at
   its bound, and the mean is then marked as an upper bound, ≤); writes efficiency.json, efficiency.md and
   horizons.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from bench.protocol import (
    add_seed,
    budget_line,
    budget_steps,
    compare,
    final_loss,
    format_summary,
    mean_std,
    model_param_counts,
    summarize_savings,
    tokens_per_step,
    tune_lr,
    write_table,
)
from kinherit.config import read_yaml
from kinherit.demo.experiment import QUICK, STUDENTS, ExperimentSpec, run_experiment
from kinherit.io import write_json
from kinherit.metrics.plots import plot_savings
from kinherit.metrics.report import sunk_flops
from kinherit.metrics.runs import load_run

TUNED = ("scratch", "grown")
LR_OF = {"scratch": "scratch", "ki": "scratch", "grown": "grown", "grown_ki": "grown"}


def _with(spec: ExperimentSpec, seed: int, lrs: dict[str, float], steps: int) -> ExperimentSpec:
    return spec.model_copy(
        update={
            "seed": seed,
            "student_train": {**spec.student_train, "learning_rate": lrs["scratch"], "max_steps": steps},
            "grown_train": {**spec.grown_train, "learning_rate": lrs["grown"]},
            "growth_lr_factor": 1.0,  # the LR is tuned
        }
    )


def tune(
    spec: ExperimentSpec, grid: list[float], seeds: list[int], out: Path, max_extensions: int = 3
) -> dict[str, Any]:
    """Best peak LR of scratch and grown over the same grid (`tune_lr`: extended until interior)."""
    budget = int(spec.student_train["max_steps"])

    def evaluate(lr: float) -> dict[str, float]:
        final: dict[str, list[float]] = {name: [] for name in TUNED}
        for seed in seeds:
            folder = out / f"seed{seed}" / f"lr{lr:g}"
            run_experiment(
                _with(spec, seed, {"scratch": lr, "grown": lr}, budget),
                folder,
                students=TUNED,
                shared=out / f"seed{seed}",
                share=frozenset({"teacher", "grown-init"}),
            )
            for name in TUNED:
                final[name].append(final_loss(folder / name))
        return {name: statistics.mean(values) for name, values in final.items()}

    return tune_lr(TUNED, grid, evaluate, max_extensions)


def _tuning(spec: ExperimentSpec, grid: list[float], seeds: list[int], out: Path) -> dict[str, Any]:
    """The tuning result, from OUT/tuning.json when an earlier call made it with the same settings. Inheritance
    settings are not part of tuning (only scratch and grown are tuned), so they may change in between."""
    key = {
        "spec": spec.model_dump(exclude={"inherit", "grown_inherit", "seed"}),
        "grid": sorted(grid),
        "tune_seeds": seeds,
    }
    saved = out / "tuning.json"
    if saved.is_file():
        recorded = json.loads(saved.read_text())
        if {k: recorded.get(k) for k in key} == key:
            print(f"using the tuning in {saved}", flush=True)
            return recorded["result"]
    result = tune(spec, grid, seeds, out / "tune")
    write_json(saved, {**key, "result": result})
    return result


def report(spec: ExperimentSpec, lrs: dict[str, float], seeds: list[int], horizon: int, out: Path) -> dict[str, Any]:
    budget = int(spec.student_train["max_steps"])
    horizons = list(range(1, horizon + 1))
    per_run: dict[str, dict[str, list]] = {name: {} for name in STUDENTS}
    grown_ahead = []
    for seed in seeds:
        folder = out / f"seed{seed}"
        run_experiment(_with(spec, seed, lrs, budget * horizon), folder)
        runs = {name: load_run(folder / name) for name in STUDENTS}
        scratch = runs["scratch"]
        for name, run in runs.items():
            add_seed(per_run[name], scratch.evals, run.evals, budget, horizons, sunk_flops(run))
        same_step = compare(scratch.evals, runs["grown"].evals, budget, horizons, at="step")
        grown_ahead.append(
            {
                "seed": seed,
                "evaluations": same_step["evaluations"],
                "grown_not_worse": same_step["not_worse"],
                "max_excess": same_step["max_excess"],
            }
        )
    summary = {name: _summary(values) for name, values in per_run.items()}
    return {"horizons": horizons, "per_seed": per_run, "summary": summary, "grown_vs_scratch_every_eval": grown_ahead}


def _summary(values: dict[str, list]) -> dict[str, dict[str, Any]]:
    """Per key: savings through `summarize_savings` (with their reached flags), everything else through `mean_std`."""
    out = {}
    for key, vals in values.items():
        if key.startswith("saving@"):
            out[key] = summarize_savings(vals, values["reached@" + key.removeprefix("saving@")])
        elif not key.startswith("reached@"):
            out[key] = mean_std(vals)
    return out


def plot_horizons(summary: dict[str, Any], horizons: list[int], path: Path) -> None:
    plot_savings(
        {name: [summary[name][f"saving@{h}x"] for h in horizons] for name in STUDENTS[1:]},
        horizons,
        path,
        "does the saving last? (mean ± std over seeds; ≤: upper bound)",
    )


def markdown(result: dict[str, Any]) -> str:
    tuning, rep = result["tuning"], result["report"]
    horizons = rep["horizons"]
    tried = tuning.get("configs_tried")
    lines = [
        f"tuning seeds {result['tune_seeds']}: best peak LR scratch {tuning['best']['scratch']:g}, "
        f"grown {tuning['best']['grown']:g} (grid {', '.join(f'{lr:g}' for lr in tuning['grid'])}; "
        f"interior: {tuning['interior']}" + (f"; {tried['scratch']} configurations each" if tried else "") + ")",
        "",
    ]
    if "budget" in result:
        lines += [budget_line(result["budget"]["steps"], result["budget"]["tokens_per_step"], result["params"]), ""]
    lines += [
        f"reported seeds {result['seeds']} (mean ± std over every seed; a seed that never reached the target "
        "counts at its bound, the saving had it reached it at its last evaluation, and the mean is then an upper "
        "bound, marked ≤); saving = FLOPs saved to reach scratch's best val loss within h budgets (teacher "
        "forward passes counted; the teacher's own pre-training is not, see the last column, where it is)",
        "",
        "| run | "
        + " | ".join(f"saving @{h}×" for h in horizons)
        + " | "
        + " | ".join(f"loss @{h}×" for h in horizons)
        + f" | loss at scratch's {horizons[-1]}× FLOPs, sunk counted |",
        "|---|" + "---|" * (2 * len(horizons) + 1),
    ]
    for name, stats in rep["summary"].items():
        cells = [format_summary(stats[f"saving@{h}x"]) for h in horizons] + [
            format_summary(stats[f"loss@{h}x"], False) for h in horizons
        ]
        equal = stats[f"loss_equal_total_flops@{horizons[-1]}x"]
        cells.append(format_summary(equal, False).replace("undefined", "sunk > budget"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    for row in rep["grown_vs_scratch_every_eval"]:
        lines.append(
            f"seed {row['seed']}: grown ≤ scratch at {row['grown_not_worse']} of {row['evaluations']} "
            f"evaluations (largest excess {row['max_excess']:+.4f})"
        )
    return "\n".join(lines) + "\n"


def load_spec(args: argparse.Namespace) -> ExperimentSpec:
    """The spec of --quick or --spec (default: the demo's), its budget B set from --tokens-per-param when given."""
    spec = (
        QUICK
        if args.quick
        else ExperimentSpec.model_validate(read_yaml(Path(args.spec).read_text()) if args.spec else {})
    )
    if args.tokens_per_param is None:
        return spec
    vocab = int(spec.data.get("tokenizer", {}).get("train_vocab_size", 4096))
    params = model_param_counts(spec.student_shape(), vocab, int(spec.data.get("seq_len", 128)))["non_embedding"]
    every = int(spec.student_train.get("eval_steps", 40))
    steps = budget_steps(
        params,
        tokens_per_step(spec.student_train, spec.data),
        tokens_per_param=args.tokens_per_param,
        multiple_of=every,
    )
    return spec.model_copy(update={"student_train": {**spec.student_train, "max_steps": steps}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", help="YAML ExperimentSpec (sections: data, teacher_model, student_model, ...)")
    parser.add_argument("--lr-grid", type=float, nargs="+", default=[5e-4, 1e-3, 2e-3, 4e-3])
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--horizon", type=int, default=3, help="train the reported runs for this many budgets")
    parser.add_argument(
        "--tokens-per-param",
        type=float,
        help="set B (student_train.max_steps) to this many tokens per non-embedding student parameter, "
        "rounded to whole evaluations",
    )
    parser.add_argument("--out", default="runs/efficiency")
    parser.add_argument("--quick", action="store_true", help="the demo's --quick sizes")
    parser.add_argument("--tune-only", action="store_true", help="stop after tuning (a later call reuses its runs)")
    args = parser.parse_args()
    if set(args.tune_seeds) & set(args.seeds):
        parser.error("tuning seeds must not be reported: --tune-seeds and --seeds overlap")

    spec = load_spec(args)
    out = Path(args.out)
    tuning = _tuning(spec, args.lr_grid, args.tune_seeds, out)
    print(f"\ntuned peak LRs: {tuning['best']} (interior: {tuning['interior']})", flush=True)
    if args.tune_only:
        return
    rep = report(spec, tuning["best"], args.seeds, args.horizon, out / "report")
    scratch_model = out / "report" / f"seed{args.seeds[0]}" / "scratch" / "model"
    result = {
        "spec": spec.model_dump(),
        "tune_seeds": args.tune_seeds,
        "seeds": args.seeds,
        "tuning": tuning,
        "budget": {
            "steps": int(spec.student_train["max_steps"]),
            "tokens_per_step": tokens_per_step(spec.student_train, spec.data),
        },
        "params": model_param_counts(scratch_model),
        "report": rep,
    }
    write_json(out / "efficiency.json", result)
    write_table(
        out,
        "efficiency",
        markdown(result),
        lambda path: plot_horizons(rep["summary"], rep["horizons"], path),
        alt="savings over horizons",
        figure="horizons.png",
    )
    print(f"written {out / 'efficiency.json'}, {out / 'efficiency.md'}, {out / 'horizons.png'}")


if __name__ == "__main__":
    main()

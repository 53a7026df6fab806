"""Compute saved by inheritance, measured fairly: tuned baseline, unreported tuning seeds, ≥ 3 seeds, horizons.

    python bench/efficiency.py [--spec configs/efficiency.yaml] [--out runs/efficiency] [--quick]
        [--lr-grid 5e-4 1e-3 2e-3 4e-3] [--tune-seeds 100] [--seeds 0 1 2] [--horizon 3]

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kinherit.config import read_yaml
from kinherit.demo.experiment import QUICK, STUDENTS, ExperimentSpec, run_experiment
from kinherit.errors import KinheritError
from kinherit.io import atomic_file, write_json
from kinherit.metrics.horizons import horizon_points
from kinherit.metrics.plots import plot_savings
from kinherit.metrics.report import sunk_flops
from kinherit.metrics.runs import load_run
from kinherit.metrics.savings import saving

TUNED = ("scratch", "grown")
LR_OF = {"scratch": "scratch", "ki": "scratch", "grown": "grown", "grown_ki": "grown"}


def _with(spec: ExperimentSpec, seed: int, lrs: dict[str, float], steps: int) -> ExperimentSpec:
    return spec.model_copy(update={
        "seed": seed,
        "student_train": {**spec.student_train, "learning_rate": lrs["scratch"], "max_steps": steps},
        "grown_train": {**spec.grown_train, "learning_rate": lrs["grown"]}, "growth_lr_factor": 1.0,  # the LR is tuned
    })


def _final_loss(run_dir: Path) -> float:
    return float(load_run(run_dir).evals[-1]["val_loss"])


def tune(spec: ExperimentSpec, grid: list[float], seeds: list[int], out: Path, max_extensions: int = 3) -> dict[str, Any]:
    """Best peak LR of scratch and grown over the same grid (extended until interior)."""
    budget = int(spec.student_train["max_steps"])
    final: dict[tuple[str, float, int], float] = {}  # (student, lr, seed) -> final val loss
    grid = sorted(grid)
    mean = lambda name, lr: statistics.mean(final[(name, lr, seed)] for seed in seeds)  # noqa: E731
    for _ in range(max_extensions + 1):
        for lr in grid:
            for seed in seeds:
                if ("scratch", lr, seed) in final:
                    continue
                folder = out / f"seed{seed}" / f"lr{lr:g}"
                run_experiment(_with(spec, seed, {"scratch": lr, "grown": lr}, budget), folder, students=TUNED,
                               shared=out / f"seed{seed}", share=frozenset({"teacher", "grown-init"}))
                for name in TUNED:
                    final[(name, lr, seed)] = _final_loss(folder / name)
        best = {name: min(grid, key=lambda lr: mean(name, lr)) for name in TUNED}
        edges = {lr for lr in best.values() if lr in (grid[0], grid[-1])}
        if not edges:
            break
        grid = sorted(set(grid) | {lr / 2 if lr == grid[0] else lr * 2 for lr in edges})
    grid = sorted({lr for _, lr, _ in final})
    table = {name: {f"{lr:g}": mean(name, lr) for lr in grid} for name in TUNED}
    return {"grid": grid, "best": best, "interior": not edges, "mean_final_loss": table}


def _tuning(spec: ExperimentSpec, grid: list[float], seeds: list[int], out: Path) -> dict[str, Any]:
    """The tuning result, from OUT/tuning.json when an earlier call made it with the same settings. Inheritance
    settings are not part of tuning (only scratch and grown are tuned), so they may change in between."""
    key = {"spec": spec.model_dump(exclude={"inherit", "grown_inherit", "seed"}), "grid": sorted(grid), "tune_seeds": seeds}
    saved = out / "tuning.json"
    if saved.is_file():
        recorded = json.loads(saved.read_text())
        if {k: recorded.get(k) for k in key} == key:
            print(f"using the tuning in {saved}", flush=True)
            return recorded["result"]
    result = tune(spec, grid, seeds, out / "tune")
    write_json(saved, {**key, "result": result})
    return result


def _mean_std(values: list[float | None]) -> dict[str, Any]:
    """Mean ± std of the values that exist (a loss at equal FLOPs is None where the sunk cost exceeds the budget)."""
    known = [v for v in values if v is not None]
    return {"mean": statistics.mean(known) if known else None,
            "std": statistics.stdev(known) if len(known) > 1 else 0.0,
            "reached": len(known), "n": len(values)}


def summarize_savings(savings: list[float], reached: list[bool]) -> dict[str, Any]:
    """Mean ± std of the savings over every seed. A seed that never reached the target enters as its bound,
    1 − F_run(last evaluation) / F_baseline (its true saving is below it), so with any such seed the mean is an
    upper bound (`bound: true`): an unreached seed is never dropped, and never raises the mean above the truth."""
    if len(savings) != len(reached) or not savings:
        raise ValueError(f"{len(savings)} savings for {len(reached)} reached flags")
    return {"mean": statistics.mean(savings), "std": statistics.stdev(savings) if len(savings) > 1 else 0.0,
            "reached": sum(reached), "n": len(savings), "bound": not all(reached)}


def write_table(out: Path, stem: str, text: str, draw: Callable[[Path], None]) -> None:
    """A bench's result: `stem`.md (the table, then its figure) and `stem`.png drawn by `draw`; the table printed."""
    with atomic_file(out / f"{stem}.md") as handle:
        handle.write(text + f"\n![{stem}]({stem}.png)\n")
    draw(out / f"{stem}.png")
    print(text)


def format_savings(savings: list[float], reached: list[bool]) -> str:
    """One table cell: mean ± std of per-seed savings, unreached seeds at their bound and the mean marked ≤."""
    return _fmt(summarize_savings(savings, reached))


def _fmt(summary: dict[str, Any], pct: bool = True) -> str:
    if summary["mean"] is None:
        return "not reached"
    fmt = (lambda v: f"{v:.1%}") if pct else (lambda v: f"{v:.3f}")
    text = ("≤ " if summary.get("bound") else "") + fmt(summary["mean"])
    text += f" ± {fmt(summary['std'])}" if summary["n"] > 1 else ""
    missing = summary["n"] - summary["reached"]
    if not missing:
        return text
    if "bound" in summary:
        return text + f" ({missing} of {summary['n']} not reached, counted at their bound)"
    return text + f" (mean of {summary['reached']}; {missing} of {summary['n']} undefined)"


def add_seed(values: dict[str, list], baseline_evals: list[dict], run_evals: list[dict], budget: int,
             horizons: list[int], sunk: float) -> None:
    """Append one seed's horizon figures to `values` (key -> one entry per seed). A run that never reaches the
    target gets `reached@h` False and, as `saving@h`, its bound 1 − F_run(last evaluation) / F_baseline(h)."""
    values.setdefault("sunk_flops", []).append(sunk)
    for p in horizon_points(baseline_evals, run_evals, budget, horizons, sunk):
        key = f"{p.horizon}x"
        if p.baseline_flops <= 0:
            raise KinheritError(f"the baseline never improved on its first evaluation within {key} the budget: "
                                "no saving is defined; train it longer or with another learning rate")
        reached = p.saving is not None
        bound = saving(float(run_evals[-1]["flops"]), p.baseline_flops)[0]
        values.setdefault(f"saving@{key}", []).append(p.saving if reached else bound)
        values.setdefault(f"reached@{key}", []).append(reached)
        values.setdefault(f"loss@{key}", []).append(p.run_loss)
        values.setdefault(f"loss_equal_total_flops@{key}", []).append(p.loss_at_equal_total_flops)


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
        grown_at = {e["step"]: e["val_loss"] for e in runs["grown"].evals}
        excess = [grown_at[e["step"]] - e["val_loss"] for e in scratch.evals if e["step"] > 0 and e["step"] in grown_at]
        grown_ahead.append({"seed": seed, "evaluations": len(excess), "grown_not_worse": sum(e <= 0 for e in excess),
                            "max_excess": max(excess)})
    summary = {name: _summary(values) for name, values in per_run.items()}
    return {"horizons": horizons, "per_seed": per_run, "summary": summary, "grown_vs_scratch_every_eval": grown_ahead}


def _summary(values: dict[str, list]) -> dict[str, dict[str, Any]]:
    """Per key: savings through `summarize_savings` (with their reached flags), everything else through `_mean_std`."""
    out = {}
    for key, vals in values.items():
        if key.startswith("saving@"):
            out[key] = summarize_savings(vals, values["reached@" + key.removeprefix("saving@")])
        elif not key.startswith("reached@"):
            out[key] = _mean_std(vals)
    return out


def plot_horizons(summary: dict[str, Any], horizons: list[int], path: Path) -> None:
    plot_savings({name: [summary[name][f"saving@{h}x"] for h in horizons] for name in STUDENTS[1:]}, horizons, path,
                 "does the saving last? (mean ± std over seeds; ≤: upper bound)")


def markdown(result: dict[str, Any]) -> str:
    tuning, rep = result["tuning"], result["report"]
    horizons = rep["horizons"]
    lines = [f"tuning seeds {result['tune_seeds']}: best peak LR scratch {tuning['best']['scratch']:g}, "
             f"grown {tuning['best']['grown']:g} (grid {', '.join(f'{lr:g}' for lr in tuning['grid'])}; "
             f"interior: {tuning['interior']})", "",
             f"reported seeds {result['seeds']} (mean ± std over every seed; a seed that never reached the target "
             "counts at its bound, the saving had it reached it at its last evaluation, and the mean is then an upper "
             "bound, marked ≤); saving = FLOPs saved to reach scratch's best val loss within h budgets (teacher forward passes counted; the teacher's "
             "own pre-training is not, see the last column, where it is)", "",
             "| run | " + " | ".join(f"saving @{h}×" for h in horizons) + " | " +
             " | ".join(f"loss @{h}×" for h in horizons) + f" | loss at scratch's {horizons[-1]}× FLOPs, sunk counted |",
             "|---|" + "---|" * (2 * len(horizons) + 1)]
    for name, stats in rep["summary"].items():
        cells = [_fmt(stats[f"saving@{h}x"]) for h in horizons] + [_fmt(stats[f"loss@{h}x"], False) for h in horizons]
        equal = stats[f"loss_equal_total_flops@{horizons[-1]}x"]
        cells.append(_fmt(equal, False).replace("undefined", "sunk > budget"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    for row in rep["grown_vs_scratch_every_eval"]:
        lines.append(f"seed {row['seed']}: grown ≤ scratch at {row['grown_not_worse']} of {row['evaluations']} "
                     f"evaluations (largest excess {row['max_excess']:+.4f})")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", help="YAML ExperimentSpec (sections: data, teacher_model, student_model, ...)")
    parser.add_argument("--lr-grid", type=float, nargs="+", default=[5e-4, 1e-3, 2e-3, 4e-3])
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--horizon", type=int, default=3, help="train the reported runs for this many budgets")
    parser.add_argument("--out", default="runs/efficiency")
    parser.add_argument("--quick", action="store_true", help="the demo's --quick sizes")
    parser.add_argument("--tune-only", action="store_true", help="stop after tuning (a later call reuses its runs)")
    args = parser.parse_args()
    if set(args.tune_seeds) & set(args.seeds):
        parser.error("tuning seeds must not be reported: --tune-seeds and --seeds overlap")

    spec = QUICK if args.quick else ExperimentSpec.model_validate(read_yaml(Path(args.spec).read_text()) if args.spec else {})
    out = Path(args.out)
    tuning = _tuning(spec, args.lr_grid, args.tune_seeds, out)
    print(f"\ntuned peak LRs: {tuning['best']} (interior: {tuning['interior']})", flush=True)
    if args.tune_only:
        return
    rep = report(spec, tuning["best"], args.seeds, args.horizon, out / "report")
    result = {"spec": spec.model_dump(), "tune_seeds": args.tune_seeds, "seeds": args.seeds, "tuning": tuning, "report": rep}
    write_json(out / "efficiency.json", result)
    plot_horizons(rep["summary"], rep["horizons"], out / "horizons.png")
    text = markdown(result)
    with atomic_file(out / "efficiency.md") as handle:
        handle.write(text + "\n![savings over horizons](horizons.png)\n")
    print("\n" + text)
    print(f"written {out / 'efficiency.json'}, {out / 'efficiency.md'}, {out / 'horizons.png'}")


if __name__ == "__main__":
    main()

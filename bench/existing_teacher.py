"""Knowledge inheritance from an existing teacher: when does it pay, and how much.

    python bench/existing_teacher.py [--student 64x4] [--teachers 64x2@4 64x2@16 64x1@16] [--budget 120]
        [--lr-grid 2e-3 4e-3 8e-3] [--tune-seeds 100] [--seeds 0 1 2] [--horizon 3] [--out runs/existing-teacher]
        [--selection salt miniplm --select-with 64x2@16 --reference 64x1@16]

A teacher `HxL@m` is a llama of hidden H and L layers trained for m·B steps at the student's batch, i.e. m times
the student's budget of tokens. It exists before the student (a user's earlier model), so its pre-training is
sunk: reported next to every saving, not charged to it (the savings with it charged are reported too).

Protocol (the fair protocol of bench/efficiency.py):
1. Teachers: each trained once, seed 1000 (no student uses it), peak LR `--teacher-lr`, cosine over its m·B steps.
2. Tuning, on seeds never reported: scratch's peak LR over the grid (extended by ×2 until the best is interior).
   Then, per teacher, KI's own knobs over `KI_GRID` (τ, schedule, `steps`) at scratch's LR: KI is tuned over
   len(KI_GRID) configurations on top of scratch's LR, and both counts are reported.
3. Reporting, on fresh seeds: scratch and KI from each teacher for H·B steps (cosine over H·B). At h = 1..H: FLOPs
   saved to reach scratch's best loss within h·B steps (teacher forward passes counted; a seed that never reaches it
   counts at its bound, marked ≤), and whether KI is at or below scratch at every evaluation (same step).
4. With `--selection`: KI from the `--select-with` teacher at its tuned knobs, trained on the blocks that teacher
   selects (`salt`; `miniplm` against the `--reference` teacher), 2·H·B·batch candidates scored and half kept, so the
   kept blocks are what the longest run consumes. The scoring FLOPs are counted in the run's FLOPs; the selection
   settings are the library's defaults, not tuned (1 configuration).
Writes existing_teacher.json, existing_teacher.md and existing_teacher.png.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

from kinherit.io import write_json
from kinherit.metrics.horizons import horizon_points
from kinherit.metrics.plots import plot_savings
from kinherit.metrics.report import sunk_flops
from kinherit.metrics.runs import load_run

# siblings in bench/ (sys.path[0] when run as a script)
from efficiency import format_savings, summarize_savings, write_table
from progressive import final_loss, model_at, parse_size, train_once

TEACHER_SEED = 1000
KI_GRID: dict[str, dict[str, Any]] = {
    "tau1-auto": {"alpha0": 1.0, "schedule": "auto", "steps": 1.0, "temperature": 1.0},
    "tau2-auto": {"alpha0": 1.0, "schedule": "auto", "steps": 1.0, "temperature": 2.0},
    "tau1-linearB": {"alpha0": 1.0, "schedule": "linear", "steps": "budget", "temperature": 1.0},
}
"""KI's knobs tried on the tuning seed; `steps: budget` is T = B (α reaches 0 at the end of the first budget)."""


def parse_teacher(text: str) -> tuple[tuple[int, int], int]:
    """`HxL@m` → ((H, L), m)."""
    size, _, multiple = text.partition("@")
    if not multiple:
        raise SystemExit(f"teacher {text!r}: write HxL@m, e.g. 64x2@8 (m = its tokens in student budgets)")
    return parse_size(size), int(multiple)


def ki_settings(name: str, teacher_dir: Path, budget: int) -> dict[str, Any]:
    knobs = dict(KI_GRID[name])
    if knobs["steps"] == "budget":
        knobs["steps"] = budget
    return {"path": str(teacher_dir / "model"), **knobs}


def tune_scratch(student: dict[str, Any], grid: list[float], seeds: list[int], budget: int, out: Path, batch: int,
                 max_extensions: int = 3) -> dict[str, Any]:
    """Scratch's best peak LR over the grid, extended by ×2 at an edge until interior."""
    losses: dict[float, float] = {}
    grid = sorted(grid)
    for _ in range(max_extensions + 1):
        for lr in grid:
            if lr not in losses:
                losses[lr] = statistics.mean(final_loss(train_once(out / f"lr{lr:g}-seed{s}", student, budget, lr, s,
                                                                   budget, batch)) for s in seeds)
        best = min(losses, key=losses.get)
        edge = best in (min(grid), max(grid))
        if not edge:
            break
        grid = sorted(set(grid) | {best / 2 if best == min(grid) else best * 2})
    return {"best": best, "interior": not edge, "configs_tried": len(losses),
            "mean_final_loss": {f"{lr:g}": v for lr, v in sorted(losses.items())}}


def compare(scratch: Path, ki: Path, budget: int, horizons: list[int]) -> dict[str, Any]:
    """One seed's KI against scratch: savings (or bounds) at each horizon, and the per-evaluation excess."""
    base, run = load_run(scratch), load_run(ki)
    sunk = sunk_flops(run)
    points = horizon_points(base.evals, run.evals, budget, horizons, sunk)
    last = float(run.evals[-1]["flops"])
    at_step = {e["step"]: e["val_loss"] for e in run.evals}
    excess = [at_step[e["step"]] - e["val_loss"] for e in base.evals if e["step"] > 0 and e["step"] in at_step]
    return {
        "saving": {f"{p.horizon}x": p.saving if p.saving is not None else 1 - last / p.baseline_flops for p in points},
        "reached": {f"{p.horizon}x": p.saving is not None for p in points},
        "saving_sunk_counted": {f"{p.horizon}x": (1 - (p.flops_to_baseline_loss + sunk) / p.baseline_flops)
                                if p.flops_to_baseline_loss is not None else None for p in points},
        "loss": {f"{p.horizon}x": p.run_loss for p in points},
        "scratch_loss": {f"{p.horizon}x": p.baseline_loss for p in points},
        "sunk_flops": sunk, "evaluations": len(excess), "not_worse": sum(e <= 0 for e in excess),
        "max_excess": max(excess),
    }


def _rows(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, entry) of each teacher, followed by its data-selection variants."""
    rows = []
    for name, entry in result["teachers"].items():
        rows.append((name, entry))
        rows += [(f"{name} + {method}", {**entry, "knobs": f"{entry['knobs']}, {method}", "report": seeds})
                 for method, seeds in entry.get("selection", {}).items()]
    return rows


def markdown(result: dict[str, Any]) -> str:
    horizons, tuning = result["horizons"], result["scratch_tuning"]
    lines = [f"scratch: peak LR {tuning['best']:g} ({tuning['configs_tried']} configurations, interior: "
             f"{tuning['interior']}); KI: scratch's LR and {len(KI_GRID)} configurations of its own knobs per teacher", "",
             "| teacher | params (non-emb.) | tokens (× student budget) | sunk FLOPs | KI knobs | "
             + " | ".join(f"saving @{h}×" for h in horizons) + " | KI ≤ scratch at evaluations | final loss KI / scratch |",
             "|---|---|---|---|---|" + "---|" * (len(horizons) + 2)]
    for name, entry in _rows(result):
        seeds = entry["report"]
        cells = [format_savings([s["saving"][f"{h}x"] for s in seeds], [s["reached"][f"{h}x"] for s in seeds])
                 for h in horizons]
        last = f"{horizons[-1]}x"
        ki_loss = [s["loss"][last] for s in seeds]
        base = [s["scratch_loss"][last] for s in seeds]
        lines.append(
            f"| {name} | {entry['params']:,} | {entry['multiple']}× | {seeds[0]['sunk_flops']:.2e} | {entry['knobs']} | "
            + " | ".join(cells)
            + f" | {sum(s['not_worse'] for s in seeds)} of {sum(s['evaluations'] for s in seeds)} "
            f"(worst {max(s['max_excess'] for s in seeds):+.3f}) | "
            f"{statistics.mean(ki_loss):.3f} ± {statistics.stdev(ki_loss) if len(seeds) > 1 else 0:.3f} / "
            f"{statistics.mean(base):.3f} ± {statistics.stdev(base) if len(seeds) > 1 else 0:.3f} |")
    lines += ["", "KI knob tuning (final val loss at B on the tuning seed):", ""]
    for name, entry in result["teachers"].items():
        lines.append(f"- {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in entry["ki_tuning"].items()))
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    horizons = result["horizons"]
    series = {f"teacher {name}": [summarize_savings([s["saving"][f"{h}x"] for s in entry["report"]],
                                                    [s["reached"][f"{h}x"] for s in entry["report"]]) for h in horizons]
              for name, entry in _rows(result)}
    plot_savings(series, horizons, path, "KI from an existing teacher (teacher sunk; mean ± std over seeds)",
                 "horizon (multiples of the student's budget)")


def non_embedding_params(hidden: int, layers: int) -> int:
    """Attention 4·d² plus gated FFN 3·d·4d per layer (the bench's llama shapes, norms left out)."""
    return layers * (4 * hidden * hidden + 3 * hidden * 4 * hidden)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="64x4")
    parser.add_argument("--teachers", nargs="+", default=["64x2@4", "64x2@16", "64x1@16"])
    parser.add_argument("--budget", type=int, default=120, help="B, the student's optimizer steps")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--teacher-lr", type=float, default=4e-3)
    parser.add_argument("--lr-grid", type=float, nargs="+", default=[2e-3, 4e-3, 8e-3])
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--horizon", type=int, default=3)
    parser.add_argument("--out", default="runs/existing-teacher")
    parser.add_argument("--selection", nargs="*", default=[], choices=["salt", "miniplm"])
    parser.add_argument("--select-with", default="64x2@16", help="the teacher that also selects the data")
    parser.add_argument("--reference", default="64x1@16", help="miniplm's smaller reference (one of --teachers)")
    args = parser.parse_args(argv)
    if set(args.tune_seeds) & set(args.seeds) or TEACHER_SEED in args.seeds:
        parser.error("tuning and teacher seeds must not be reported: --tune-seeds/--seeds overlap or use 1000")
    out, horizons, budget = Path(args.out), list(range(1, args.horizon + 1)), args.budget
    student = model_at(*parse_size(args.student))
    teachers = {text: parse_teacher(text) for text in args.teachers}  # parsed before any training
    if args.selection and (args.select_with not in teachers or ("miniplm" in args.selection and args.reference not in teachers)):
        parser.error("--select-with and --reference must name teachers of --teachers")
    teacher_dirs: dict[str, Path] = {}
    scratch = tune_scratch(student, args.lr_grid, args.tune_seeds, budget, out / "tune" / "scratch", args.batch)
    lr = scratch["best"]
    print(f"scratch: tuned peak LR {lr:g} (interior: {scratch['interior']})", flush=True)
    result: dict[str, Any] = {"args": vars(args), "horizons": horizons, "scratch_tuning": scratch, "teachers": {}}
    for text, (size, multiple) in teachers.items():
        teacher_dir = teacher_dirs[text] = train_once(out / "teachers" / text, model_at(*size), multiple * budget,
                                                      args.teacher_lr, TEACHER_SEED, budget, args.batch)
        ki_tuning = {name: statistics.mean(final_loss(train_once(
            out / "tune" / text / f"{name}-seed{s}", student, budget, lr, s, budget, args.batch,
            teacher=ki_settings(name, teacher_dir, budget))) for s in args.tune_seeds) for name in KI_GRID}
        knobs = min(ki_tuning, key=ki_tuning.get)
        print(f"teacher {text}: KI knobs {knobs} ({ki_tuning})", flush=True)
        report = []
        for seed in args.seeds:
            steps = budget * args.horizon
            base = train_once(out / "report" / f"seed{seed}" / "scratch", student, steps, lr, seed, budget, args.batch)
            ki = train_once(out / "report" / f"seed{seed}" / f"ki-{text}", student, steps, lr, seed, budget, args.batch,
                       teacher=ki_settings(knobs, teacher_dir, budget))
            report.append({"seed": seed, **compare(base, ki, budget, horizons)})
        result["teachers"][text] = {"params": non_embedding_params(*size), "multiple": multiple, "knobs": knobs,
                                    "ki_tuning": ki_tuning, "report": report}
        write_json(out / "existing_teacher.json", result)
    for method in args.selection:
        steps = budget * args.horizon
        entry, teacher_dir = result["teachers"][args.select_with], teacher_dirs[args.select_with]
        selected = []
        for seed in args.seeds:
            selection = {"method": method, "candidates": 2 * steps * args.batch, "keep": 0.5, "seed": seed}
            if method == "miniplm":
                selection["reference"] = str(teacher_dirs[args.reference] / "model")
            base = out / "report" / f"seed{seed}" / "scratch"
            run = train_once(out / "report" / f"seed{seed}" / f"ki-{args.select_with}-{method}", student, steps, lr, seed, budget,
                        args.batch, teacher=ki_settings(entry["knobs"], teacher_dir, budget), selection=selection)
            selected.append({"seed": seed, **compare(base, run, budget, horizons)})
        entry.setdefault("selection", {})[method] = selected
        write_json(out / "existing_teacher.json", result)
    header = f"student {args.student} ({non_embedding_params(*parse_size(args.student)):,} non-embedding params), B = {budget} steps"
    write_table(out, "existing_teacher", header + "\n\n" + markdown(result), lambda path: plot(result, path))


if __name__ == "__main__":
    sys.exit(main())

"""Knowledge inheritance from an existing teacher: when does it pay, and how much.

    python -m bench.existing_teacher [--student 64x4] [--teachers 64x2@4 64x2@16 64x1@16]
        [--budget 120 | --tokens-per-param 20]
        [--lr-grid 2e-3 4e-3 8e-3] [--tune-seeds 100] [--seeds 0 1 2] [--horizon 3] [--out runs/existing-teacher]
        [--selection salt miniplm --select-with 64x2@16 --reference 64x1@16]

A teacher `HxL@m` is a llama of hidden H and L layers trained for m·B steps at the student's batch, i.e. m times
the student's budget of tokens. It exists before the student (a user's earlier model), so its pre-training is
sunk: reported next to every saving, not charged to it (the savings with it charged are reported too).

Protocol (bench.protocol, as bench/efficiency.py runs it):
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

from bench.protocol import (
    DATA,
    budget_line,
    budget_steps,
    compare,
    final_loss,
    format_savings,
    mean_std,
    model_at,
    model_param_counts,
    non_embedding_params,
    parse_size,
    summarize_savings,
    tokens_per_step,
    train_once,
    tune_lr,
    write_table,
)
from kinherit.io import write_json
from kinherit.metrics.plots import plot_savings
from kinherit.metrics.report import sunk_flops
from kinherit.metrics.runs import load_run

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


def tune_scratch(
    student: dict[str, Any],
    grid: list[float],
    seeds: list[int],
    budget: int,
    out: Path,
    batch: int,
    max_extensions: int = 3,
) -> dict[str, Any]:
    """Scratch's best peak LR over the grid, extended by ×2 at an edge until interior (`tune_lr`)."""

    def evaluate(lr: float) -> dict[str, float]:
        return {
            "scratch": statistics.mean(
                final_loss(train_once(out / f"lr{lr:g}-seed{s}", student, budget, lr, s, budget, batch)) for s in seeds
            )
        }

    tuned = tune_lr(["scratch"], grid, evaluate, max_extensions)
    return {
        "best": tuned["best"]["scratch"],
        "interior": tuned["interior"],
        "configs_tried": tuned["configs_tried"]["scratch"],
        "mean_final_loss": tuned["mean_final_loss"]["scratch"],
    }


def compare_runs(scratch: Path, ki: Path, budget: int, horizons: list[int]) -> dict[str, Any]:
    """One seed's KI against scratch (`compare` at the same step, the teacher's pre-training sunk)."""
    run = load_run(ki)
    return compare(load_run(scratch).evals, run.evals, budget, horizons, sunk_flops(run), at="step")


def _rows(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, entry) of each teacher, followed by its data-selection variants."""
    rows = []
    for name, entry in result["teachers"].items():
        rows.append((name, entry))
        rows += [
            (f"{name} + {method}", {**entry, "knobs": f"{entry['knobs']}, {method}", "report": seeds})
            for method, seeds in entry.get("selection", {}).items()
        ]
    return rows


def markdown(result: dict[str, Any]) -> str:
    horizons, tuning = result["horizons"], result["scratch_tuning"]
    lines = [
        f"scratch: peak LR {tuning['best']:g} ({tuning['configs_tried']} configurations, interior: "
        f"{tuning['interior']}); KI: scratch's LR and {len(KI_GRID)} configurations of its own knobs per teacher",
        "",
        "| teacher | params (non-emb.) | tokens (× student budget) | sunk FLOPs | KI knobs | "
        + " | ".join(f"saving @{h}×" for h in horizons)
        + " | KI ≤ scratch at evaluations | final loss KI / scratch |",
        "|---|---|---|---|---|" + "---|" * (len(horizons) + 2),
    ]
    for name, entry in _rows(result):
        seeds = entry["report"]
        cells = [
            format_savings([s["saving"][f"{h}x"] for s in seeds], [s["reached"][f"{h}x"] for s in seeds])
            for h in horizons
        ]
        last = f"{horizons[-1]}x"
        ki_loss, base = mean_std([s["loss"][last] for s in seeds]), mean_std([s["scratch_loss"][last] for s in seeds])
        lines.append(
            f"| {name} | {entry['params']:,} | {entry['multiple']}× | {seeds[0]['sunk_flops']:.2e} | "
            f"{entry['knobs']} | "
            + " | ".join(cells)
            + f" | {sum(s['not_worse'] for s in seeds)} of {sum(s['evaluations'] for s in seeds)} "
            f"(worst {max(s['max_excess'] for s in seeds):+.3f}) | "
            f"{ki_loss['mean']:.3f} ± {ki_loss['std']:.3f} / {base['mean']:.3f} ± {base['std']:.3f} |"
        )
    lines += ["", "KI knob tuning (final val loss at B on the tuning seed):", ""]
    for name, entry in result["teachers"].items():
        lines.append(f"- {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in entry["ki_tuning"].items()))
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    horizons = result["horizons"]
    series = {
        f"teacher {name}": [
            summarize_savings(
                [s["saving"][f"{h}x"] for s in entry["report"]], [s["reached"][f"{h}x"] for s in entry["report"]]
            )
            for h in horizons
        ]
        for name, entry in _rows(result)
    }
    plot_savings(
        series,
        horizons,
        path,
        "KI from an existing teacher (teacher sunk; mean ± std over seeds)",
        "horizon (multiples of the student's budget)",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="64x4")
    parser.add_argument("--teachers", nargs="+", default=["64x2@4", "64x2@16", "64x1@16"])
    parser.add_argument("--budget", type=int, help="B, the student's optimizer steps (default 120)")
    parser.add_argument(
        "--tokens-per-param",
        type=float,
        help="B instead as this many tokens per non-embedding student parameter (rounded to a multiple of 4 steps)",
    )
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
    if args.budget is not None and args.tokens_per_param is not None:
        parser.error("give B as --budget or as --tokens-per-param, not both")
    if args.tokens_per_param is None:
        args.budget = 120 if args.budget is None else args.budget
    student = model_at(*parse_size(args.student))
    step_tokens = tokens_per_step({"per_device_train_batch_size": args.batch}, DATA)
    budget = budget_steps(
        non_embedding_params(*parse_size(args.student)),
        step_tokens,
        steps=args.budget,
        tokens_per_param=args.tokens_per_param,
        multiple_of=1 if args.budget else 4,
    )
    out, horizons = Path(args.out), list(range(1, args.horizon + 1))
    teachers = {text: parse_teacher(text) for text in args.teachers}  # parsed before any training
    if args.selection and (
        args.select_with not in teachers or ("miniplm" in args.selection and args.reference not in teachers)
    ):
        parser.error("--select-with and --reference must name teachers of --teachers")
    teacher_dirs: dict[str, Path] = {}
    scratch = tune_scratch(student, args.lr_grid, args.tune_seeds, budget, out / "tune" / "scratch", args.batch)
    lr = scratch["best"]
    print(f"scratch: tuned peak LR {lr:g} (interior: {scratch['interior']})", flush=True)
    result: dict[str, Any] = {"args": vars(args), "horizons": horizons, "scratch_tuning": scratch, "teachers": {}}
    for text, (size, multiple) in teachers.items():
        teacher_dir = teacher_dirs[text] = train_once(
            out / "teachers" / text,
            model_at(*size),
            multiple * budget,
            args.teacher_lr,
            TEACHER_SEED,
            budget,
            args.batch,
        )
        ki_tuning = {
            name: statistics.mean(
                final_loss(
                    train_once(
                        out / "tune" / text / f"{name}-seed{s}",
                        student,
                        budget,
                        lr,
                        s,
                        budget,
                        args.batch,
                        teacher=ki_settings(name, teacher_dir, budget),
                    )
                )
                for s in args.tune_seeds
            )
            for name in KI_GRID
        }
        knobs = min(ki_tuning, key=ki_tuning.get)
        print(f"teacher {text}: KI knobs {knobs} ({ki_tuning})", flush=True)
        report = []
        for seed in args.seeds:
            steps = budget * args.horizon
            base = train_once(out / "report" / f"seed{seed}" / "scratch", student, steps, lr, seed, budget, args.batch)
            ki = train_once(
                out / "report" / f"seed{seed}" / f"ki-{text}",
                student,
                steps,
                lr,
                seed,
                budget,
                args.batch,
                teacher=ki_settings(knobs, teacher_dir, budget),
            )
            report.append({"seed": seed, **compare_runs(base, ki, budget, horizons)})
        result["teachers"][text] = {
            "params": non_embedding_params(*size),
            "multiple": multiple,
            "knobs": knobs,
            "ki_tuning": ki_tuning,
            "report": report,
        }
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
            run = train_once(
                out / "report" / f"seed{seed}" / f"ki-{args.select_with}-{method}",
                student,
                steps,
                lr,
                seed,
                budget,
                args.batch,
                teacher=ki_settings(entry["knobs"], teacher_dir, budget),
                selection=selection,
            )
            selected.append({"seed": seed, **compare_runs(base, run, budget, horizons)})
        entry.setdefault("selection", {})[method] = selected
        write_json(out / "existing_teacher.json", result)
    counts = model_param_counts(out / "report" / f"seed{args.seeds[0]}" / "scratch" / "model")
    result["student"] = {"budget": budget, "tokens_per_step": step_tokens, "params": counts}
    write_json(out / "existing_teacher.json", result)
    header = (
        f"student {args.student} ({counts['non_embedding']:,} non-embedding params), B = {budget} steps\n\n"
        + budget_line(budget, step_tokens, counts)
        + " (the student's)"
    )
    write_table(out, "existing_teacher", header + "\n\n" + markdown(result), lambda path: plot(result, path))


if __name__ == "__main__":
    sys.exit(main())

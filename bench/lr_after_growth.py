"""The LR rule after growth, without a sweep: one-shot growth at the demo's sizes and settings, over 3× the budget.

    python -m bench.lr_after_growth [--corpora stdlib /usr/share/vim/vim90/doc] [--factors 2 1] [--horizon 3]
        [--out runs/lr-after-growth] [--quick]

For each corpus: the demo's teacher (llama 64×2, 500 steps) is grown exactly into the demo's student (128×4) and
trained for H·B steps (B = the demo's 500, cosine over H·B) at the demo's learning rate 2e-3 × each
`growth_lr_factor` (2: the library's rule; 1: the LR as given, the demo's earlier setting), against scratch at the
demo's 2e-3, on the same data, steps and seed. Nothing is tuned: this is what a user who runs no sweep gets.
Reports, per corpus and factor: at how many evaluations the grown student's validation loss is at or below scratch's
(equal steps are equal FLOPs: same shape, the teacher's pre-training sunk), the largest excess, and the FLOPs saved
to reach scratch's loss after h·B steps, h = 1..H. Writes lr_after_growth.json, .md and .png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.protocol import (  # noqa: E402
    budget_line,
    compare,
    final_loss,
    format_savings,
    model_param_counts,
    tokens_per_step,
    write_table,
)
from kinherit.demo.experiment import QUICK, ExperimentSpec, run_experiment  # noqa: E402
from kinherit.io import write_json  # noqa: E402
from kinherit.metrics.plots import finish_axes, save_png  # noqa: E402
from kinherit.metrics.runs import load_run  # noqa: E402


def corpus_name(source: str) -> str:
    return Path(source).name or source


def run_corpus(spec: ExperimentSpec, source: str, factors: list[float], horizon: int, out: Path) -> dict[str, Any]:
    """Teacher, growth and scratch once per corpus (shared), one grown student per factor; compared with scratch."""
    budget = int(spec.student_train["max_steps"])
    spec = spec.model_copy(
        update={
            "data": {**spec.data, "sources": [source]},
            "student_train": {**spec.student_train, "max_steps": horizon * budget},
        }
    )
    shared, rows = out / corpus_name(source), {}
    for factor in factors:
        folder = shared / f"factor{factor:g}"
        run_experiment(
            spec.model_copy(update={"growth_lr_factor": factor}),
            folder,
            students=("scratch", "grown"),
            shared=shared,
            share=frozenset({"teacher", "grown-init", "scratch"}),
        )
        rows[f"{factor:g}"] = compare(
            load_run(shared / "scratch").evals, load_run(folder / "grown").evals, budget, list(range(1, horizon + 1))
        )
    return {
        "budget": budget,
        "tokens_per_step": tokens_per_step(spec.student_train, spec.data),
        "params": model_param_counts(shared / "scratch" / "model"),
        "scratch_final_loss": final_loss(shared / "scratch"),
        "factors": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    horizons = result["horizons"]
    lines = [
        f"{corpus}: " + budget_line(entry["budget"], entry["tokens_per_step"], entry["params"])
        for corpus, entry in result["corpora"].items()
        if "params" in entry
    ]
    lines += [""] if lines else []
    lines += [
        "| corpus | grown LR | evaluations ≤ scratch | largest excess | "
        + " | ".join(f"saving @{h}×" for h in horizons)
        + " | final loss (scratch) |",
        "|---|---|---|---|" + "---|" * (len(horizons) + 1),
    ]
    for corpus, entry in result["corpora"].items():
        for factor, row in entry["factors"].items():
            cells = [format_savings([row["saving"][f"{h}x"]], [row["reached"][f"{h}x"]]) for h in horizons]
            lines.append(
                f"| {corpus} | {result['lr']:g} × {factor} | {row['not_worse_at_equal_flops']} of "
                f"{row['evaluations']} | {row['max_excess']:+.4f} | "
                + " | ".join(cells)
                + f" | {row['loss'][f'{horizons[-1]}x']:.4f} ({entry['scratch_final_loss']:.4f}) |"
            )
    return "\n".join(lines) + "\n"


def plot(out: Path, result: dict[str, Any], path: Path) -> None:
    """Grown minus scratch validation loss against the step from half the budget on (before it the grown student
    is far ahead), one panel per corpus, one line per factor."""
    corpora = list(result["corpora"])
    fig, axes = plt.subplots(1, len(corpora), figsize=(6 * len(corpora), 3.8), squeeze=False)
    for ax, corpus in zip(axes[0], corpora):
        base = {e["step"]: e["val_loss"] for e in load_run(out / corpus / "scratch").evals}
        start = result["corpora"][corpus]["budget"] / 2
        for factor in result["corpora"][corpus]["factors"]:
            evals = [
                e
                for e in load_run(out / corpus / f"factor{factor}" / "grown").evals
                if e["step"] in base and e["step"] >= start
            ]
            ax.plot(
                [e["step"] for e in evals],
                [e["val_loss"] - base[e["step"]] for e in evals],
                marker="o",
                markersize=2,
                label=f"grown, LR {result['lr']:g} × {factor}",
            )
        for h in range(1, result["horizons"][-1]):
            ax.axvline(h * result["corpora"][corpus]["budget"], color="grey", linestyle=":", linewidth=0.8)
        ax.axhline(0.0, color="black", linewidth=0.8)
        finish_axes(
            ax,
            "step (same shape: equal FLOPs)",
            "val loss − scratch's",
            f"{corpus}: grown vs scratch (LR {result['lr']:g}), no sweep",
            legend_size=7,
        )
    save_png(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", nargs="+", default=["stdlib"], help="data sources (stdlib, a file or a folder)")
    parser.add_argument("--factors", type=float, nargs="+", default=[2.0, 1.0], help="growth_lr_factor values")
    parser.add_argument("--horizon", type=int, default=3, help="train for this many budgets")
    parser.add_argument("--out", default="runs/lr-after-growth")
    parser.add_argument("--quick", action="store_true", help="the demo's --quick sizes")
    args = parser.parse_args(argv)
    spec = QUICK if args.quick else ExperimentSpec()
    out = Path(args.out)
    result = {
        "args": vars(args),
        "lr": float(spec.student_train["learning_rate"]),
        "horizons": list(range(1, args.horizon + 1)),
        "corpora": {},
    }
    for source in args.corpora:
        result["corpora"][corpus_name(source)] = run_corpus(spec, source, args.factors, args.horizon, out)
        write_json(out / "lr_after_growth.json", result)
    write_table(out, "lr_after_growth", markdown(result), lambda path: plot(out, result, path))


if __name__ == "__main__":
    sys.exit(main())

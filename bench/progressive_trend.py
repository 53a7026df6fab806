"""How the staged saving changes with model size: a fit over the sizes of one or more `bench.progressive` results.

    python -m bench.progressive_trend runs/progressive/progressive.json [more.json ...] --schedule depth@0.8
        [--at 1e9] [--out runs/progressive-trend]

For every size of every result file, the mean saving of `--schedule` at each horizon over the reported seeds (an
unreached seed counts at its bound, as in the table) against N, the target's non-embedding parameters. The fit is
a power law in the compute fraction the staged run needs, 1 − saving = 10^a · N^b (least squares on
log10(1 − saving) = a + b·log10 N, with b's standard error), which stays below a 100% saving however far it is
extrapolated; `--at` N is the extrapolation, labelled as such: a line through a few sizes of a few hundred thousand
parameters says nothing certain about 1B. Writes trend.json, trend.md and trend.png.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.protocol import (  # noqa: E402
    DATA,
    mean_std,
    model_at,
    model_param_counts,
    non_embedding_params,
    parse_size,
    tokens_per_param,
    write_table,
)
from kinherit.io import write_json  # noqa: E402
from kinherit.metrics.plots import finish_axes, save_png  # noqa: E402


def budget_tokens_per_param(result: dict[str, Any], size: str) -> dict[str, float] | None:
    """B of `size` in a progressive.json result, in tokens per parameter of the target (non-embedding, with
    embeddings); a result written before the budget was recorded per size has `args.budget` steps of `args.batch`
    blocks of DATA's seq_len, at DATA's vocabulary; None for a result without either."""
    entry = result["sizes"][size]
    if "budget" not in entry and "budget" not in result.get("args", {}):
        return None
    budget = entry.get("budget") or {
        "steps": result["args"]["budget"],
        "tokens_per_step": result["args"].get("batch", 16) * DATA["seq_len"],
        "params": model_param_counts(model_at(*parse_size(size)), DATA["tokenizer"]["train_vocab_size"]),
    }
    return tokens_per_param(budget["steps"], budget["tokens_per_step"], budget["params"])


def points(results: list[dict[str, Any]], schedule: str) -> list[dict[str, Any]]:
    """(size, N, B in tokens per parameter, mean ± std saving per horizon, seeds not reaching scratch per horizon),
    sorted by N (`non_embedding_params`)."""
    rows = []
    for result in results:
        for size, entry in result["sizes"].items():
            per_seed = entry["report"].get(schedule)
            if per_seed is None:
                continue
            horizons = [f"{h}x" for h in result["horizons"]]
            stats = {h: mean_std([s["saving"][h] for s in per_seed]) for h in horizons}
            rows.append(
                {
                    "size": size,
                    "params": non_embedding_params(*parse_size(size)),
                    "seeds": len(per_seed),
                    "tokens_per_param": budget_tokens_per_param(result, size),
                    "saving": {h: stats[h]["mean"] for h in horizons},
                    "std": {h: stats[h]["std"] for h in horizons},
                    "unreached": {h: sum(not s["reached"][h] for s in per_seed) for h in horizons},
                }
            )
    return sorted(rows, key=lambda row: row["params"])


def fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least squares y = a + b·x with b's standard error (None with fewer than 3 points)."""
    n, mx, my = len(xs), statistics.mean(xs), statistics.mean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    residual = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
    return {"a": a, "b": b, "b_stderr": math.sqrt(residual / (n - 2) / sxx) if n > 2 else None}


def trend(rows: list[dict[str, Any]], at: float) -> dict[str, Any]:
    """Per horizon: the fit of log10(1 − saving) on log10 N and the saving it gives at N = `at` (an extrapolation)."""
    out = {}
    for h in rows[0]["saving"]:
        line = fit([math.log10(r["params"]) for r in rows], [math.log10(1 - r["saving"][h]) for r in rows])
        out[h] = {**line, "at": predicted(line, at)}
    return out


def predicted(line: dict[str, float], params: float) -> float:
    """The saving the fit gives at `params`: 1 − 10^(a + b·log10 N)."""
    return 1 - 10 ** (line["a"] + line["b"] * math.log10(params))


def markdown(rows: list[dict[str, Any]], fits: dict[str, Any], schedule: str, at: float) -> str:
    horizons = list(fits)
    lines = [
        "B (tokens per parameter): the budget of the progressive result in tokens per parameter of the size, "
        "non-embedding / with embeddings; a horizon h holds at h times it",
        "",
        "| size | non-embedding params | B (tokens per parameter) | "
        + " | ".join(f"{schedule} saving @{h}" for h in horizons)
        + " |",
        "|---|---|---|" + "---|" * len(horizons),
    ]
    for row in rows:
        cells = [
            ("≤ " if row["unreached"][h] else "")
            + f"{100 * row['saving'][h]:.1f}% ± {100 * row['std'][h]:.1f}%"
            + (f" ({row['unreached'][h]} of {row['seeds']} not reached)" if row["unreached"][h] else "")
            for h in horizons
        ]
        tpp = row["tokens_per_param"]
        per_param = f"{tpp['non_embedding']:.3g} / {tpp['with_embedding']:.3g}" if tpp else "—"
        lines.append(f"| {row['size']} | {row['params']:,} | {per_param} | " + " | ".join(cells) + " |")
    slope = [
        f"N^({fits[h]['b']:+.2f}" + (f" ± {fits[h]['b_stderr']:.2f})" if fits[h]["b_stderr"] is not None else ")")
        for h in horizons
    ]
    lines.append("| fit: compute fraction 1 − saving ∝ | | | " + " | ".join(slope) + " |")
    lines.append(
        f"| extrapolated to {at:.0e} (not measured) | | | "
        + " | ".join(f"{100 * fits[h]['at']:.0f}%" for h in horizons)
        + " |"
    )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], fits: dict[str, Any], schedule: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["params"] for r in rows]
    for i, h in enumerate(fits):
        ax.errorbar(
            xs,
            [100 * r["saving"][h] for r in rows],
            yerr=[100 * r["std"][h] for r in rows],
            fmt="o",
            color=f"C{i}",
            capsize=3,
            label=f"{schedule} @{h} (mean ± std over seeds)",
        )
        grid = [min(xs) / 1.5, max(xs) * 1.5]
        ax.plot(grid, [100 * predicted(fits[h], x) for x in grid], color=f"C{i}", linewidth=0.8)
    ax.set_xscale("log")
    ax.axhline(0.0, color="black", linewidth=0.8)
    finish_axes(
        ax,
        "target non-embedding parameters",
        "FLOPs saved vs tuned scratch (%), all counted",
        "staged training: saving against model size",
        legend_size=7,
    )
    save_png(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="progressive.json files")
    parser.add_argument("--schedule", default="depth@0.8")
    parser.add_argument("--at", type=float, default=1e9, help="extrapolate the fit to this many parameters")
    parser.add_argument("--out", default="runs/progressive-trend")
    args = parser.parse_args(argv)
    rows = points([json.loads(Path(p).read_text()) for p in args.results], args.schedule)
    if len(rows) < 2:
        parser.error(f"{args.schedule!r} has {len(rows)} size(s) in these results; a trend needs at least 2")
    fits = trend(rows, args.at)
    out = Path(args.out)
    write_json(out / "trend.json", {"args": vars(args), "points": rows, "fits": fits})
    write_table(
        out, "trend", markdown(rows, fits, args.schedule, args.at), lambda path: plot(rows, fits, args.schedule, path)
    )


if __name__ == "__main__":
    sys.exit(main())

"""Report plots (PNG): validation loss against FLOPs, tokens and wall time; α over steps for KI runs; savings over
horizons (the benches)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from kinherit.io import atomic_file  # noqa: E402
from kinherit.metrics.horizons import value_at  # noqa: E402
from kinherit.metrics.runs import Run  # noqa: E402

AXES = (
    ("flops", "training FLOPs (teacher forward passes included)", False),
    ("tokens", "training tokens", False),
    ("time_s", "wall time (s)", False),
)


def finish_axes(ax: plt.Axes, xlabel: str, ylabel: str, title: str, legend_size: float | None = None) -> None:
    """Every kinherit figure's axes: labels, title, a light grid and the legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)


def save_png(fig: plt.Figure, path: Path) -> Path:
    """Write `fig` atomically as a 120-dpi PNG and close it."""
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_curves(runs: list[Run], target: float, out: Path) -> list[Path]:
    """One figure per x-axis; the baseline's final loss is a dashed line; a staged run's growths are dotted
    vertical lines in its colour (on the FLOPs and tokens axes), one legend entry (`<run>: growth`) per run."""
    paths = []
    for key, label, log_x in AXES:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for run in runs:
            points = [(x, y) for x, y in run.curve(key) if not (log_x and x <= 0)]
            if points:
                (line,) = ax.plot(*zip(*points), marker="o", markersize=3, label=run.name)
                growth_label = f"{run.name}: growth"  # one legend entry for all of a run's growths
                for growth in run.growths:
                    at = _at_step(run, key, growth["step"])
                    if at is not None:
                        ax.axvline(at, color=line.get_color(), linestyle=":", linewidth=1, label=growth_label)
                        growth_label = None
        ax.axhline(target, color="gray", linestyle="--", linewidth=1, label=f"baseline final loss {target:.3f}")
        if log_x:
            ax.set_xscale("log")
        finish_axes(ax, label, "validation loss", f"validation loss vs {label.split(' (')[0]}")
        paths.append(save_png(fig, out / f"val_loss_vs_{key.removesuffix('_s')}.png"))
    return paths


def _at_step(run: Run, key: str, step: int) -> float | None:
    """`key` (flops, tokens, time) at optimizer step `step`, interpolated between the run's logged events."""
    points = sorted({(float(e["step"]), float(e[key])) for e in run.train + run.evals if key in e})
    return value_at(points, float(step))


def plot_alpha(runs: list[Run], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for run in runs:
        points = [(e["step"], e["alpha"]) for e in run.train if "alpha" in e]
        if points:
            ax.plot(*zip(*points), label=run.name)
    finish_axes(ax, "optimizer step", "α (weight of the KD term)", "knowledge-inheritance weight over training")
    return save_png(fig, out / "alpha.png")


def plot_savings(
    series: dict[str, list[dict[str, Any]]],
    horizons: list[int],
    path: Path,
    title: str,
    xlabel: str = "horizon (multiples of the budget)",
) -> Path:
    """FLOPs saved (%) against the horizon, one line per series of per-horizon summaries {mean, std, bound}: mean ±
    std over seeds, ≤ beside a mean that is an upper bound (a seed never reached the target), a None mean left out."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, stats in series.items():
        known = [(h, s) for h, s in zip(horizons, stats) if s["mean"] is not None]
        line = ax.errorbar(
            [h for h, _ in known],
            [s["mean"] * 100 for _, s in known],
            yerr=[s["std"] * 100 for _, s in known],
            marker="o",
            capsize=3,
            label=name,
        )[0]
        for h, s in known:
            if s.get("bound"):
                ax.annotate(
                    "≤", (h, s["mean"] * 100), textcoords="offset points", xytext=(6, 4), color=line.get_color()
                )
    ax.axhline(0, color="gray", linewidth=1)
    ax.set_xticks(horizons)
    finish_axes(ax, xlabel, "FLOPs saved to reach scratch's loss (%)", title, legend_size=7)
    return save_png(fig, path)

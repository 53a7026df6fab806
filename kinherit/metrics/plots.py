"""Report plots (PNG): validation loss against FLOPs, tokens and wall time; α over steps for KI runs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from kinherit.io import atomic_file  # noqa: E402
from kinherit.metrics.horizons import value_at  # noqa: E402
from kinherit.metrics.runs import Run  # noqa: E402

AXES = (("flops", "training FLOPs (teacher forward passes included)", False),
        ("tokens", "training tokens", False),
        ("time_s", "wall time (s)", False))


def save_png(fig: plt.Figure, path: Path) -> Path:
    """Write `fig` atomically as a 120-dpi PNG and close it."""
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_curves(runs: list[Run], target: float, out: Path) -> list[Path]:
    """One figure per x-axis; the baseline's final loss is a dashed line; a staged run's growths are dotted
    vertical lines in its colour (on the FLOPs and tokens axes)."""
    paths = []
    for key, label, log_x in AXES:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for run in runs:
            points = [(x, y) for x, y in run.curve(key) if not (log_x and x <= 0)]
            if points:
                (line,) = ax.plot(*zip(*points), marker="o", markersize=3, label=run.name)
                for growth in run.growths:
                    at = _at_step(run, key, growth["step"])
                    if at is not None:
                        ax.axvline(at, color=line.get_color(), linestyle=":", linewidth=1)
        ax.axhline(target, color="gray", linestyle="--", linewidth=1, label=f"baseline final loss {target:.3f}")
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("validation loss")
        ax.set_title(f"validation loss vs {label.split(' (')[0]}")
        ax.grid(alpha=0.3)
        ax.legend()
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
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("α (weight of the KD term)")
    ax.set_title("knowledge-inheritance weight over training")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_png(fig, out / "alpha.png")

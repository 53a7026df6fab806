"""Staged training against scratch at the final size, all compute counted (nothing is sunk).

    python -m bench.progressive [--sizes 64x4 128x4] [--schedules depth width both]
        [--budget 200 | --tokens-per-param 20]
        [--lr-grid 1e-3 2e-3 4e-3 8e-3] [--tune-seeds 100] [--seeds 0 1 2] [--horizon 3] [--scheduler cosine|wsd]
        [--out runs/progressive]

Protocol (bench.protocol, as bench/efficiency.py runs it):
1. Tuning, on seeds that are never reported: scratch and each staged schedule are trained for the budget B at every
   peak LR of the same grid (extended by ×2 until each best LR is interior); the best is the lowest final val loss.
2. Reporting, on fresh seeds: scratch and each schedule trained for H·B steps (cosine over H·B) at their tuned LRs.
   A schedule's growth steps are fractions of B, so its stages are the same at every horizon.
3. Horizons h = 1..H: FLOPs saved to reach scratch's loss after h·B steps (a seed that never reaches it counts at
   its bound and is marked), and whether the staged run is at or below scratch at equal total FLOPs at every
   evaluation. Mean ± std over the seeds; writes progressive.json, progressive.md and progressive.png.

Schedules, for a target of hidden d and L layers (heads d/16 ... as the size says):
    depth  1 layer, at 0.25·B L/2 layers, at 0.5·B L layers (full width throughout)
    width  d/2 wide (half the heads), at 0.5·B d wide (full depth throughout)
    both   d/2 wide and 1 layer, at 0.25·B L/2 layers, at 0.5·B d wide and L layers
    single 1 layer, at 0.5·B L layers: one expansion (Bu et al. 2026 expand once, late; with `+stack` and an early
           `@f`, G_stack's single ×L stacking of Du et al. 2024)
    shallow  depth's start (d wide, 1 layer) trained throughout: the control that says whether growing beats not growing
A variant is written NAME[@f][+option...]: `@f` moves the last growth to f·B (earlier growths keep their share of
it, e.g. both@0.8: 0.4·B and 0.8·B); each option sets one growth-stage key on every stage: `+reset`
(optimizer_state: reset), `+rewarm` (lr_policy: rewarm), `+lrscale` (lr_scaling: growth), `+stack` (depth: stack,
new layers copy the trained stack instead of starting as identities).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.protocol import (  # noqa: E402
    DATA,
    HEAD_DIM,
    budget_steps,
    compare,
    final_loss,
    format_savings,
    model_at,
    model_param_counts,
    parse_size,
    tokens_per_param,
    tokens_per_step,
    train_once,
    tune_lr,
    write_table,
)
from kinherit.io import atomic_file, write_json  # noqa: E402
from kinherit.metrics.horizons import value_at  # noqa: E402
from kinherit.metrics.plots import finish_axes, save_png  # noqa: E402
from kinherit.metrics.runs import load_run  # noqa: E402

OPTIONS = {
    "reset": {"optimizer_state": "reset"},
    "rewarm": {"lr_policy": "rewarm"},
    "lrscale": {"lr_scaling": "growth"},
    "stack": {"depth": "stack"},
}
"""The `+option` suffixes of a schedule variant, each a growth-stage setting."""


def schedule(variant: str, hidden: int, layers: int, budget: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(start model, growth stages) of a schedule variant (see the module docstring); `scratch` has none."""
    head, *flags = variant.split("+")
    name, _, last = head.partition("@")
    unknown = [flag for flag in flags if flag not in OPTIONS]
    if unknown:
        raise SystemExit(
            f"unknown option +{unknown[0]} in {variant!r}: choose from {', '.join('+' + o for o in OPTIONS)}"
        )
    settings = {key: value for flag in flags for key, value in OPTIONS[flag].items()}
    model, stages = _stages(name, hidden, layers, budget, float(last) if last else 0.5)
    return model, [{**stage, **settings} for stage in stages]


def _stages(
    name: str, hidden: int, layers: int, budget: int, last: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    full = {
        "hidden_size": hidden,
        "num_heads": hidden // HEAD_DIM,
        "intermediate_size": 4 * hidden,
        "num_layers": layers,
    }
    quarter, half = round(0.5 * last * budget), round(last * budget)
    if name == "scratch":
        return model_at(hidden, layers), []
    if name == "shallow":  # the control: depth's one-layer start, never grown
        return model_at(hidden, 1), []
    if name == "depth":
        return model_at(hidden, 1), [{"at_step": quarter, "num_layers": max(2, layers // 2)}, {"at_step": half, **full}]
    if name == "single":
        return model_at(hidden, 1), [{"at_step": half, **full}]
    if name == "width":
        return model_at(hidden // 2, layers), [{"at_step": half, **full}]
    if name == "both":
        return model_at(hidden // 2, 1), [
            {"at_step": quarter, "num_layers": max(2, layers // 2)},
            {"at_step": half, **full},
        ]
    raise SystemExit(f"unknown schedule {name!r}: choose from scratch, depth, single, width, both, shallow")


def run(
    name: str,
    size: tuple[int, int],
    lr: float,
    seed: int,
    steps: int,
    budget: int,
    out: Path,
    batch: int,
    scheduler: str = "cosine",
) -> Path:
    """Train one run of schedule `name` (reusing a finished one in `out`)."""
    model, growth = schedule(name, *size, budget)
    return train_once(out, model, steps, lr, seed, budget, batch, scheduler, growth=growth)


def tune(
    names: list[str],
    size: tuple[int, int],
    grid: list[float],
    seeds: list[int],
    budget: int,
    out: Path,
    batch: int,
    scheduler: str = "cosine",
    max_extensions: int = 3,
) -> dict[str, Any]:
    """Each run's best peak LR over the same grid, extended until interior (`tune_lr`)."""

    def evaluate(lr: float) -> dict[str, float]:
        return {
            name: statistics.mean(
                final_loss(run(name, size, lr, s, budget, budget, out / name / f"lr{lr:g}-seed{s}", batch, scheduler))
                for s in seeds
            )
            for name in names
        }

    return tune_lr(names, grid, evaluate, max_extensions)


def compare_runs(scratch: Path, staged: Path, budget: int, horizons: list[int]) -> dict[str, Any]:
    """One seed's staged run against scratch (`compare` at equal FLOPs; nothing is sunk)."""
    return compare(load_run(scratch).evals, load_run(staged).evals, budget, horizons)


def _tpp(entry: dict[str, Any]) -> str:
    """The size's budget B in tokens per parameter of the target, non-embedding / with embeddings."""
    if "budget" not in entry:
        return "—"
    tpp = tokens_per_param(entry["budget"]["steps"], entry["budget"]["tokens_per_step"], entry["budget"]["params"])
    return f"{tpp['non_embedding']:.3g} / {tpp['with_embedding']:.3g}"


def markdown(result: dict[str, Any]) -> str:
    horizons = result["horizons"]
    lines = [
        "B (tokens per parameter): the budget in tokens per parameter of the target size, non-embedding / with "
        "embeddings; a horizon h holds at h times it",
        "",
        "| size | B (tokens per parameter) | run | peak LR (configs tried) | "
        + " | ".join(f"saving @{h}×" for h in horizons)
        + " | ≤ scratch at equal FLOPs |",
        "|---|---|---|---|" + "---|" * (len(horizons) + 1),
    ]
    for size, entry in result["sizes"].items():
        tuning, tpp = entry["tuning"], _tpp(entry)
        lines.append(
            f"| {size} | {tpp} | scratch | {tuning['best']['scratch']:g} "
            f"({tuning['configs_tried']['scratch']}) | " + " | ".join("—" for _ in horizons) + " | — |"
        )
        for name, per_seed in entry["report"].items():
            cells = [
                format_savings([s["saving"][f"{h}x"] for s in per_seed], [s["reached"][f"{h}x"] for s in per_seed])
                for h in horizons
            ]
            ahead = (
                f"{sum(s['not_worse_at_equal_flops'] for s in per_seed)} of {sum(s['evaluations'] for s in per_seed)}"
            )
            lines.append(
                f"| {size} | {tpp} | {name} | {tuning['best'][name]:g} ({tuning['configs_tried'][name]}) | "
                + " | ".join(cells)
                + f" | {ahead} |"
            )
    return "\n".join(lines) + "\n"


def tuning_markdown(result: dict[str, Any]) -> str:
    """Each variant's final validation loss after B steps at every peak LR tried, on the tuning seeds (mean)."""
    lines = []
    for size, entry in result["sizes"].items():
        tuning = entry["tuning"]
        budget = entry.get("budget", {"steps": result["args"]["budget"]})
        grid = sorted({float(lr) for losses in tuning["mean_final_loss"].values() for lr in losses})
        lines += [
            f"{size}, tuning seeds {result['args']['tune_seeds']}: final val loss after B = "
            f"{budget['steps']} steps"
            + (f" ({_tpp(entry)} tokens per parameter, non-embedding / with embeddings)" if "params" in budget else ""),
            "",
            "| variant | " + " | ".join(f"LR {lr:g}" for lr in grid) + " | best |",
            "|---|" + "---|" * (len(grid) + 1),
        ]
        for name, losses in tuning["mean_final_loss"].items():
            cells = [f"{losses[key]:.3f}" if (key := f"{lr:g}") in losses else "—" for lr in grid]
            best = tuning["best"][name]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {best:g}: {losses[f'{best:g}']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def plot(out: Path, result: dict[str, Any], path: Path) -> None:
    """Validation loss against total FLOPs of every reported seed (scratch solid, one dash style per schedule, colour
    per seed), growths as thin dotted lines."""
    sizes = list(result["sizes"])
    fig, axes = plt.subplots(1, len(sizes), figsize=(6.5 * len(sizes), 4), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        styles = ("--", "-.", (0, (1, 1)), (0, (5, 1, 1, 1, 1, 1)))  # one per schedule; growths are dotted
        for name, style in (("scratch", "-"), *zip(result["sizes"][size]["report"], styles)):
            for i, seed in enumerate(result["args"]["seeds"]):
                run_ = load_run(out / size / "report" / f"seed{seed}" / name)
                (line,) = ax.plot(
                    *zip(*run_.curve("flops")),
                    style,
                    marker="o",
                    markersize=2,
                    color=f"C{i}",
                    label=f"{name} seed {seed}",
                )
                for growth in run_.growths:
                    at = value_at(
                        sorted((float(e["step"]), float(e["flops"])) for e in run_.evals), float(growth["step"])
                    )
                    if at is not None:
                        ax.axvline(at, color=line.get_color(), linestyle=":", linewidth=0.8)
        finish_axes(
            ax,
            "total training FLOPs (every stage counted)",
            "validation loss",
            f"{size}: staged schedules vs tuned scratch (solid), colour = seed",
            legend_size=6,
        )
    save_png(fig, path)


def size_budget(size: tuple[int, int], args: argparse.Namespace) -> int:
    """B at this target size: --budget steps, or --tokens-per-param tokens per non-embedding parameter of the target
    (rounded to a multiple of 4 steps, so that evaluations every B/4 fall on every horizon)."""
    params = model_param_counts(model_at(*size), DATA["tokenizer"]["train_vocab_size"], DATA["seq_len"])
    return budget_steps(
        params["non_embedding"],
        tokens_per_step({"per_device_train_batch_size": args.batch}, DATA),
        steps=args.budget,
        tokens_per_param=args.tokens_per_param,
        multiple_of=1 if args.tokens_per_param is None else 4,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["64x4", "128x4"])
    parser.add_argument("--schedules", nargs="+", default=["depth", "width", "both"])
    parser.add_argument("--budget", type=int, help="B, optimizer steps (default 200)")
    parser.add_argument(
        "--tokens-per-param",
        type=float,
        help="B instead as this many tokens per non-embedding parameter of each target size",
    )
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr-grid", type=float, nargs="+", default=[1e-3, 2e-3, 4e-3, 8e-3])
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--horizon", type=int, default=3)
    parser.add_argument(
        "--scheduler",
        choices=["cosine", "wsd"],
        default="cosine",
        help="every run's LR schedule: cosine, or WSD decaying over the last 20%% of its steps",
    )
    parser.add_argument("--out", default="runs/progressive")
    parser.add_argument(
        "--tune-only",
        action="store_true",
        help="stop after tuning: compare the variants on the tuning seeds (progressive-tuning.md)",
    )
    args = parser.parse_args(argv)
    if set(args.tune_seeds) & set(args.seeds):
        parser.error("tuning seeds must not be reported: --tune-seeds and --seeds overlap")
    if args.budget is not None and args.tokens_per_param is not None:
        parser.error("give B as --budget or as --tokens-per-param, not both")
    if args.tokens_per_param is None:
        args.budget = 200 if args.budget is None else args.budget
    out, horizons = Path(args.out), list(range(1, args.horizon + 1))
    result: dict[str, Any] = {"args": vars(args), "horizons": horizons, "sizes": {}}
    for text in args.sizes:
        size = parse_size(text)
        budget = size_budget(size, args)
        names = ["scratch", *args.schedules]
        tuning = tune(
            names, size, args.lr_grid, args.tune_seeds, budget, out / text / "tune", args.batch, args.scheduler
        )
        print(f"{text}: tuned {tuning['best']} (interior: {tuning['interior']})", flush=True)
        scratch_model = out / text / "tune" / "scratch" / f"lr{tuning['best']['scratch']:g}-seed{args.tune_seeds[0]}"
        entry: dict[str, Any] = {
            "budget": {
                "steps": budget,
                "tokens_per_step": args.batch * DATA["seq_len"],
                "params": model_param_counts(scratch_model / "model"),
            }
        }
        if args.tune_only:
            result["sizes"][text] = {**entry, "tuning": tuning}
            continue
        report: dict[str, list[dict[str, Any]]] = {name: [] for name in args.schedules}
        for seed in args.seeds:
            steps = budget * args.horizon
            folders = {
                name: run(
                    name,
                    size,
                    tuning["best"][name],
                    seed,
                    steps,
                    budget,
                    out / text / "report" / f"seed{seed}" / name,
                    args.batch,
                    args.scheduler,
                )
                for name in names
            }
            for name in args.schedules:
                report[name].append({"seed": seed, **compare_runs(folders["scratch"], folders[name], budget, horizons)})
        result["sizes"][text] = {**entry, "tuning": tuning, "report": report}
        write_json(out / "progressive.json", result)
    if args.tune_only:
        write_json(out / "progressive-tuning.json", result)
        with atomic_file(out / "progressive-tuning.md") as handle:
            handle.write(tuning_markdown(result))
        print(tuning_markdown(result))
        return
    write_table(out, "progressive", markdown(result), lambda path: plot(out, result, path))


if __name__ == "__main__":
    sys.exit(main())

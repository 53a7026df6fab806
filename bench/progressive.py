"""Staged training against scratch at the final size, all compute counted (nothing is sunk).

    python bench/progressive.py [--sizes 64x4 128x4] [--schedules depth width both] [--budget 200]
        [--lr-grid 1e-3 2e-3 4e-3 8e-3] [--tune-seeds 100] [--seeds 0 1 2] [--horizon 3] [--scheduler cosine|wsd]
        [--out runs/progressive]

Protocol (the fair protocol of bench/efficiency.py):
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
    shallow  depth's start (d wide, 1 layer) trained throughout: the control that says whether growing beats not growing
A variant is written NAME[@f][+option...]: `@f` moves the last growth to f·B (earlier growths keep their share of
it, e.g. both@0.8: 0.4·B and 0.8·B); each option sets one growth-stage key on every stage: `+reset`
(optimizer_state: reset), `+rewarm` (lr_policy: rewarm), `+lrscale` (lr_scaling: growth).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from kinherit.config import WSD, validate_config  # noqa: E402
from kinherit.io import atomic_file, write_json  # noqa: E402
from kinherit.metrics.horizons import horizon_points, value_at  # noqa: E402
from kinherit.metrics.plots import finish_axes, save_png  # noqa: E402
from kinherit.metrics.runs import load_run  # noqa: E402
from kinherit.train.pretrain import pretrain  # noqa: E402

from efficiency import format_savings, write_table  # noqa: E402  (a sibling in bench/, sys.path[0] when run as a script)

HEAD_DIM = 16
DATA = {"sources": ["stdlib"], "tokenizer": {"train_vocab_size": 2048}, "seq_len": 128, "val_fraction": 0.005}


def parse_size(text: str) -> tuple[int, int]:
    hidden, layers = text.lower().split("x")
    return int(hidden), int(layers)


def model_at(hidden: int, layers: int) -> dict[str, Any]:
    return {"family": "llama", "hidden_size": hidden, "num_layers": layers, "num_heads": hidden // HEAD_DIM,
            "intermediate_size": 4 * hidden}


OPTIONS = {"reset": {"optimizer_state": "reset"}, "rewarm": {"lr_policy": "rewarm"}, "lrscale": {"lr_scaling": "growth"}}
"""The `+option` suffixes of a schedule variant, each a growth-stage setting."""


def schedule(variant: str, hidden: int, layers: int, budget: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(start model, growth stages) of a schedule variant (see the module docstring); `scratch` has none."""
    head, *flags = variant.split("+")
    name, _, last = head.partition("@")
    unknown = [flag for flag in flags if flag not in OPTIONS]
    if unknown:
        raise SystemExit(f"unknown option +{unknown[0]} in {variant!r}: choose from {', '.join('+' + o for o in OPTIONS)}")
    settings = {key: value for flag in flags for key, value in OPTIONS[flag].items()}
    model, stages = _stages(name, hidden, layers, budget, float(last) if last else 0.5)
    return model, [{**stage, **settings} for stage in stages]


def _stages(name: str, hidden: int, layers: int, budget: int, last: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    full = {"hidden_size": hidden, "num_heads": hidden // HEAD_DIM, "intermediate_size": 4 * hidden, "num_layers": layers}
    quarter, half = round(0.5 * last * budget), round(last * budget)
    if name == "scratch":
        return model_at(hidden, layers), []
    if name == "shallow":  # the control: depth's one-layer start, never grown
        return model_at(hidden, 1), []
    if name == "depth":
        return model_at(hidden, 1), [{"at_step": quarter, "num_layers": max(2, layers // 2)}, {"at_step": half, **full}]
    if name == "width":
        return model_at(hidden // 2, layers), [{"at_step": half, **full}]
    if name == "both":
        return model_at(hidden // 2, 1), [{"at_step": quarter, "num_layers": max(2, layers // 2)}, {"at_step": half, **full}]
    raise SystemExit(f"unknown schedule {name!r}: choose from scratch, depth, width, both, shallow")


def train_once(out: Path, model: dict[str, Any], steps: int, lr: float, seed: int, budget: int, batch: int,
               scheduler: str = "cosine", **sections: Any) -> Path:
    """One pre-training run of the protocol in `out`, reused when finished: warm-up 5%, cosine (or WSD, decaying over
    the last 20%) over `steps`, evaluations every B/4, `lr` the peak LR of every stage; `sections` (growth, teacher,
    selection) are added to the config when not None."""
    if not (out / "model").is_dir():
        wsd = {"lr_scheduler_type": WSD} if scheduler == "wsd" else {}
        config = {"out": str(out), "data": DATA, "model": model,
                  "train": {"max_steps": steps, "learning_rate": lr, "per_device_train_batch_size": batch,
                            "warmup_steps": 0.05, "eval_steps": max(budget // 4, 1), "save_steps": steps,
                            "logging_steps": max(budget // 20, 1), "seed": seed, "disable_tqdm": True, **wsd},
                  **{key: value for key, value in sections.items() if value is not None}}
        pretrain(validate_config(config))
    return out


def run(name: str, size: tuple[int, int], lr: float, seed: int, steps: int, budget: int, out: Path, batch: int,
        scheduler: str = "cosine") -> Path:
    """Train one run of schedule `name` (reusing a finished one in `out`)."""
    model, growth = schedule(name, *size, budget)
    return train_once(out, model, steps, lr, seed, budget, batch, scheduler, growth=growth)


def final_loss(folder: Path) -> float:
    return float(load_run(folder).evals[-1]["val_loss"])


def tune(names: list[str], size: tuple[int, int], grid: list[float], seeds: list[int], budget: int, out: Path,
         batch: int, scheduler: str = "cosine", max_extensions: int = 3) -> dict[str, Any]:
    """Each run's best peak LR over the same grid, extended until interior."""
    losses: dict[str, dict[float, float]] = {name: {} for name in names}
    grid = sorted(grid)
    for _ in range(max_extensions + 1):
        for name in names:
            for lr in grid:
                if lr not in losses[name]:
                    losses[name][lr] = statistics.mean(
                        final_loss(run(name, size, lr, s, budget, budget, out / name / f"lr{lr:g}-seed{s}", batch, scheduler))
                        for s in seeds)
        best = {name: min(losses[name], key=losses[name].get) for name in names}
        edges = {lr for lr in best.values() if lr in (min(grid), max(grid))}
        if not edges:
            break
        grid = sorted(set(grid) | {lr / 2 if lr == min(grid) else lr * 2 for lr in edges})
    return {"best": best, "interior": not edges, "configs_tried": {n: len(v) for n, v in losses.items()},
            "mean_final_loss": {n: {f"{lr:g}": v for lr, v in sorted(losses[n].items())} for n in names}}


def compare(scratch: Path, staged: Path, budget: int, horizons: list[int]) -> dict[str, Any]:
    base, other = load_run(scratch), load_run(staged)
    points = horizon_points(base.evals, other.evals, budget, horizons, 0.0)
    curve = [(e["flops"], e["val_loss"]) for e in other.evals]
    excess = [value_at(curve, e["flops"]) - e["val_loss"] for e in base.evals
              if e["step"] > 0 and value_at(curve, e["flops"]) is not None]
    last = float(other.evals[-1]["flops"])
    # a run that never reaches the target needed more than all its FLOPs: its saving is at most 1 − F_last/F_b
    bound = {f"{p.horizon}x": 1 - last / p.baseline_flops for p in points if p.saving is None}
    return {"saving": {f"{p.horizon}x": p.saving if p.saving is not None else bound[f"{p.horizon}x"] for p in points},
            "reached": {f"{p.horizon}x": p.saving is not None for p in points},
            "loss": {f"{p.horizon}x": p.run_loss for p in points},
            "evaluations": len(excess), "not_worse_at_equal_flops": sum(e <= 0 for e in excess),
            "max_excess": max(excess) if excess else None}


def markdown(result: dict[str, Any]) -> str:
    horizons = result["horizons"]
    lines = ["| size | run | peak LR (configs tried) | " + " | ".join(f"saving @{h}×" for h in horizons)
             + " | ≤ scratch at equal FLOPs |", "|---|---|---|" + "---|" * (len(horizons) + 1)]
    for size, entry in result["sizes"].items():
        tuning = entry["tuning"]
        lines.append(f"| {size} | scratch | {tuning['best']['scratch']:g} ({tuning['configs_tried']['scratch']}) | "
                     + " | ".join("—" for _ in horizons) + " | — |")
        for name, per_seed in entry["report"].items():
            cells = [format_savings([s["saving"][f"{h}x"] for s in per_seed], [s["reached"][f"{h}x"] for s in per_seed])
                     for h in horizons]
            ahead = f"{sum(s['not_worse_at_equal_flops'] for s in per_seed)} of {sum(s['evaluations'] for s in per_seed)}"
            lines.append(f"| {size} | {name} | {tuning['best'][name]:g} ({tuning['configs_tried'][name]}) | "
                         + " | ".join(cells) + f" | {ahead} |")
    return "\n".join(lines) + "\n"


def tuning_markdown(result: dict[str, Any]) -> str:
    """Each variant's final validation loss after B steps at every peak LR tried, on the tuning seeds (mean)."""
    lines = []
    for size, entry in result["sizes"].items():
        tuning = entry["tuning"]
        grid = sorted({float(lr) for losses in tuning["mean_final_loss"].values() for lr in losses})
        lines += [f"{size}, tuning seeds {result['args']['tune_seeds']}: final val loss after B = {result['args']['budget']} steps",
                  "", "| variant | " + " | ".join(f"LR {lr:g}" for lr in grid) + " | best |", "|---|" + "---|" * (len(grid) + 1)]
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
                (line,) = ax.plot(*zip(*run_.curve("flops")), style, marker="o", markersize=2, color=f"C{i}",
                                  label=f"{name} seed {seed}")
                for growth in run_.growths:
                    at = value_at(sorted((float(e["step"]), float(e["flops"])) for e in run_.evals), float(growth["step"]))
                    if at is not None:
                        ax.axvline(at, color=line.get_color(), linestyle=":", linewidth=0.8)
        finish_axes(ax, "total training FLOPs (every stage counted)", "validation loss",
                    f"{size}: staged schedules vs tuned scratch (solid), colour = seed", legend_size=6)
    save_png(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["64x4", "128x4"])
    parser.add_argument("--schedules", nargs="+", default=["depth", "width", "both"])
    parser.add_argument("--budget", type=int, default=200, help="B, optimizer steps")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr-grid", type=float, nargs="+", default=[1e-3, 2e-3, 4e-3, 8e-3])
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--horizon", type=int, default=3)
    parser.add_argument("--scheduler", choices=["cosine", "wsd"], default="cosine",
                        help="every run's LR schedule: cosine, or WSD decaying over the last 20%% of its steps")
    parser.add_argument("--out", default="runs/progressive")
    parser.add_argument("--tune-only", action="store_true",
                        help="stop after tuning: compare the variants on the tuning seeds (progressive-tuning.md)")
    args = parser.parse_args(argv)
    if set(args.tune_seeds) & set(args.seeds):
        parser.error("tuning seeds must not be reported: --tune-seeds and --seeds overlap")
    out, horizons = Path(args.out), list(range(1, args.horizon + 1))
    result: dict[str, Any] = {"args": vars(args), "horizons": horizons, "sizes": {}}
    for text in args.sizes:
        size = parse_size(text)
        names = ["scratch", *args.schedules]
        tuning = tune(names, size, args.lr_grid, args.tune_seeds, args.budget, out / text / "tune", args.batch,
                      args.scheduler)
        print(f"{text}: tuned {tuning['best']} (interior: {tuning['interior']})", flush=True)
        if args.tune_only:
            result["sizes"][text] = {"tuning": tuning}
            continue
        report: dict[str, list[dict[str, Any]]] = {name: [] for name in args.schedules}
        for seed in args.seeds:
            steps = args.budget * args.horizon
            folders = {name: run(name, size, tuning["best"][name], seed, steps, args.budget,
                                 out / text / "report" / f"seed{seed}" / name, args.batch, args.scheduler) for name in names}
            for name in args.schedules:
                report[name].append({"seed": seed, **compare(folders["scratch"], folders[name], args.budget, horizons)})
        result["sizes"][text] = {"tuning": tuning, "report": report}
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

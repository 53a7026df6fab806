"""Savings where users train: at budgets of τ tokens per parameter, against the annealed scratch frontier.

    python -m bench.where_users_train --target 64x4 --tokens-per-param 5 20 [--curve-tokens-per-param 2.5 40]
        --frontier 48x4 64x4 96x4 --methods scratch depth both@0.8 grow:32x4 ki:32x4
        [--lr-grid 1e-3 2e-3 4e-3 8e-3]
        [--tune-seed 100] [--tune-at 20] [--seeds 1 2 3] [--scheduler wsd|cosine] [--batch 16]
        [--source-tokens-per-param 20] [--source-lr 8e-3]
        [--corpus runs/corpus/bench-corpus] [--out runs/where_users_train]

Methods, at the target of hidden d and L layers:
- a `bench.progressive` schedule (depth, both@0.8+rewarm, ...; `scratch` is the target's own scratch run): staged
  growth inside one run, every stage counted (all compute: nothing is sunk);
- `grow:HxL` (one-shot growth): an existing model HxL (below) grown once into the target's shape with kinherit's
  growth at the library's defaults (`kinherit.grow.grow_folder`: clone width, identity depth, 0 dB symmetry-breaking
  noise; verified against the source's logits, max |Δ| in the table's header), then trained S(τ) steps from that
  folder (`model.from`) at its own tuned LR (growth_lr_factor 1: the LR is tuned, so the grid is the peak LR);
- `ki:HxL` (knowledge inheritance): the target from scratch for S(τ) steps with the existing HxL as teacher (a
  `teacher:` section with the library's defaults: schedule auto, α0 1, temperature 1), its LR tuned.
  The existing model HxL (`bench.existing_models`): a scratch run trained once, seed 1000 (never a reported or tune
  seed), peak LR --source-lr (default 8e-3, near the tuned scratch LRs of these sizes), annealed like every run, for
  --source-tokens-per-param τ_s (default 20) tokens per non-embedding parameter *of the target* (the target's own
  τ_s budget of tokens, at the same batch; its own tokens per parameter are higher: N_target / N_source · τ_s), in
  OUT/sources/HxL (the grown folder in OUT/sources/HxL-grown-TARGET), reused when finished. A width growth keeps
  head_dim 16, so the source's hidden size is a multiple of 16; the source is smaller than the target. A method
  that is not one of these, or a source that cannot grow into the target, is refused in one line (exit 2) before
  any training.

Protocol (bench.protocol):
1. Budgets. At τ tokens per non-embedding parameter of the target (N), the target trains S(τ) = τ·N / (tokens per
   step) steps and spends C(τ) = S(τ) · FLOPs per step; every frontier size gets the same C(τ) (its own steps,
   C(τ) / its FLOPs per step, rounded); a method trains S(τ) steps, its small stages counted, KI's teacher forward
   passes counted (the trainer's FLOPs). The scratch curves are also measured at the --curve-tokens-per-param
   budgets (no method runs there), which widen the range in which a method's loss can be placed without a bound.
2. Every run is annealed at its own budget (cosine, or WSD decaying over its last 20%): a point is what a user
   training for that budget gets, never a mid-run point.
3. Tuning on the tune seed, never reported: the peak LR of every (size or method, τ) over one grid (`tune_lr`,
   extended until interior), or, with --tune-at τ0, at τ0 only and reused at every τ (the table says so). The sizes
   and staged methods are tuned together; each grow:/ki: method on its own (the grid extended for it alone).
4. Reporting on fresh seeds: per seed, the scratch curves of that seed's runs give L*(C) (the frontier, min over
   sizes, in log C) and each run's (C_m, L_m) is placed on them (`against_frontier`): saving vs the target's scratch
   curve, saving vs the frontier, Δ loss vs the frontier at equal compute. A loss outside a curve's measured range
   gives a bound (≤ or ≥), never an extrapolation; a seed with a bound is counted at it, never dropped. A grow:/ki:
   run is placed twice: with the source's training sunk (its row), and with all compute, C_m + the source's
   training FLOPs (`kinherit.metrics.report.sunk_flops`, walked through the run's lineage), its `(all compute)` row.
5. Where the saving reaches zero: per method (and all-compute row), the τ at which its mean saving vs the target's
   scratch changes sign, linear in log τ between the two table τ that bracket it (`zero_crossing`; a bound counts
   at its known end), or "> max τ" / "< min τ" measured.
Writes where_users_train.json, .md (one table per target) and .png (loss vs FLOPs: sizes, envelope, methods).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.existing_models import (  # noqa: E402
    ALL_COMPUTE,
    SOURCE_SEED,
    check_methods,
    grown_dir,
    prepare_sources,
    reuse_of,
    source_dir,
    source_line,
)
from bench.progressive import schedule  # noqa: E402
from bench.protocol import (  # noqa: E402
    against_frontier,
    budget_steps,
    corpus_data,
    final_loss,
    flops_per_step,
    format_summary,
    frontier,
    interval_value,
    mean_std,
    model_at,
    model_param_counts,
    parse_size,
    tokens_per_param,
    tokens_per_step,
    train_once,
    tune_lr,
    write_table,
)
from kinherit.io import write_json  # noqa: E402
from kinherit.metrics.plots import finish_axes, save_png  # noqa: E402
from kinherit.metrics.report import sunk_flops  # noqa: E402
from kinherit.metrics.runs import load_run  # noqa: E402

STEM = "where_users_train"


def plan(
    target: str, sizes: list[str], taus: list[float], batch: int, data: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Per τ (key `f"{τ:g}"`): the target's steps S(τ) and FLOPs C(τ), and each size's steps at C(τ)."""
    vocab, seq_len = data["tokenizer"]["train_vocab_size"], data["seq_len"]
    step_tokens = tokens_per_step({"per_device_train_batch_size": batch}, data)
    n = model_param_counts(model_at(*parse_size(target)), vocab, seq_len)["non_embedding"]
    per_step = {size: flops_per_step(model_at(*parse_size(size)), step_tokens, vocab, seq_len) for size in sizes}
    out = {}
    for tau in taus:
        steps = budget_steps(n, step_tokens, tokens_per_param=tau)
        flops = steps * per_step[target]
        out[f"{tau:g}"] = {
            "steps": steps,
            "flops": flops,
            "size_steps": {size: max(1, round(flops / per_step[size])) for size in sizes},
        }
    return out


def train(
    name: str, target: str, budget: dict[str, Any], lr: float, seed: int, out: Path, args: argparse.Namespace
) -> Path:
    """One annealed run at budget τ: a frontier size `HxL` (scratch, its own steps) or a method at the target: a
    staged schedule, or grow:/ki: from its existing model (`prepare_sources` made it)."""
    reuse = reuse_of(name)
    if name in budget["size_steps"]:
        model, growth, steps = model_at(*parse_size(name)), [], budget["size_steps"][name]
    elif reuse is not None:
        kind, size = reuse
        base, steps = Path(args.out).resolve(), budget["steps"]
        if kind == "grow":  # tuned, so at the LR as given (growth_lr_factor 1), not the library's rule for untuned runs
            model, sections = {"from": str(grown_dir(base, size, target))}, {"growth_lr_factor": 1.0}
        else:
            model, sections = (
                model_at(*parse_size(target)),
                {"teacher": {"path": str(source_dir(base, size) / "model")}},
            )
        return train_once(out, model, steps, lr, seed, steps, args.batch, args.scheduler, args.data, **sections)
    else:
        model, growth = schedule(name, *parse_size(target), budget["steps"])
        steps = budget["steps"]
    return train_once(out, model, steps, lr, seed, steps, args.batch, args.scheduler, args.data, growth=growth)


def tune(names: list[str], target: str, tau: str, budget: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Each run's peak LR at budget τ on the tune seed (`tune_lr`, one grid for sizes and methods): the sizes and
    staged methods together, each grow:/ki: method on its own (an extension of the grid for it trains it alone),
    merged into one `tune_lr` result."""
    groups = [[name for name in names if reuse_of(name) is None], *([n] for n in names if reuse_of(n) is not None)]
    parts = [_tune(group, target, tau, budget, args) for group in groups]
    if len(parts) == 1:
        return parts[0]
    merged: dict[str, Any] = {
        "grid": sorted({lr for part in parts for lr in part["grid"]}),
        "interior": all(part["interior"] for part in parts),
    }
    for key in ("best", "interior_by_run", "configs_tried", "mean_final_loss"):
        merged[key] = {name: part[key][name] for part in parts for name in part[key]}
    return merged


def _tune(names: list[str], target: str, tau: str, budget: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """`tune_lr` over `names` together."""

    def evaluate(lr: float) -> dict[str, float]:
        folder = Path(args.out) / f"tau{tau}" / "tune"
        return {
            name: final_loss(train(name, target, budget, lr, args.tune_seed, folder / name / f"lr{lr:g}", args))
            for name in names
        }

    return tune_lr(names, args.lr_grid, evaluate, args.max_extensions)


def point(folder: Path, sunk: bool = False) -> dict[str, float]:
    """A finished run's total FLOPs and final validation loss; with `sunk`, also the FLOPs of the runs whose models it
    reuses (`source_flops`: its lineage's, `sunk_flops`)."""
    run = load_run(folder)
    return {
        "flops": float(run.evals[-1]["flops"]),
        "loss": final_loss(folder),
        **({"source_flops": sunk_flops(run)} if sunk else {}),
    }


def analyse(runs: dict[str, dict[str, dict[str, float]]], target: str, sizes: list[str]) -> dict[str, Any]:
    """One seed's runs (name -> τ -> point) placed on that seed's scratch curves (`against_frontier`); a run that
    reuses an existing model also with its source's FLOPs added (`NAME (all compute)`)."""
    curves = {size: [(p["flops"], p["loss"]) for p in runs[size].values()] for size in sizes}
    placed = {}
    for name, by_tau in runs.items():
        placed[name] = {
            tau: against_frontier(p["flops"], p["loss"], curves[target], curves) for tau, p in by_tau.items()
        }
        if reuse_of(name) is not None:
            placed[name + ALL_COMPUTE] = {
                tau: against_frontier(p["flops"] + p["source_flops"], p["loss"], curves[target], curves)
                for tau, p in by_tau.items()
            }
    return placed


def rows(sizes: list[str], methods: list[str]) -> list[str]:
    """The table's runs in order: the sizes, then each method (a grow:/ki: one followed by its all-compute row)."""
    return [*sizes, *(n for m in methods for n in (m, *([m + ALL_COMPUTE] if reuse_of(m) else [])))]


def zero_crossing(savings: dict[float, float]) -> dict[str, Any]:
    """Where a saving measured at several τ (τ -> saving) reaches zero: at the first sign change in increasing τ,
    linear in log τ between the two τ that bracket it; a saving of exactly 0 at a τ is that τ. Without a sign change,
    `tau` None and `beyond` "above" (positive at every τ: > max τ measured) or "below" (negative at every τ: < min τ
    measured). `direction`: "falls" (positive before) or "rises"."""
    points = sorted(savings.items())
    for (t0, s0), (t1, s1) in zip(points, points[1:]):
        if s0 == 0 or s0 * s1 < 0:
            x = math.log(t0) + (math.log(t1) - math.log(t0)) * s0 / (s0 - s1)
            return {"tau": math.exp(x), "between": [t0, t1], "direction": "falls" if s0 > 0 or s1 < 0 else "rises",
                    "beyond": None}  # fmt: skip
    last, saving = points[-1]
    if saving == 0:
        return {"tau": last, "between": [last, last], "direction": None, "beyond": None}
    above = saving > 0
    return {"tau": None, "between": None, "direction": None, "beyond": "above" if above else "below",
            "measured": [points[0][0], last]}  # fmt: skip


def crossings(summary: dict[str, dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Per run of `names`, `zero_crossing` of its mean saving vs the target's scratch over the table's τ, with the
    savings used and whether one of them is a bound."""
    out = {}
    for name in names:
        values = {float(tau): interval_value(summary[tau][name]["vs_target"]) for tau in summary}
        found = zero_crossing({tau: v for tau, (v, _) in values.items()})
        out[name] = {**found, "savings": {f"{t:g}": v for t, (v, _) in values.items()},
                     "bounded": any(b for _, b in values.values())}  # fmt: skip
    return out


def format_crossing(name: str, c: dict[str, Any]) -> str:
    """`name` at τ ≈ x (between a and b), or `name` > max τ measured (b) / < min τ measured (a)."""
    if c["tau"] is not None:
        low, high = c["between"]
        where = [f"between {low:g} and {high:g}"] if low != high else []
        where += [{"rises": "rising", "falls": "falling"}[c["direction"]]] if c["direction"] else []
        text = f"{name} at τ ≈ {c['tau']:.3g}" + (f" ({', '.join(where)})" if where else "")
    elif c["beyond"] == "above":
        text = f"{name} > max τ measured ({c['measured'][1]:g})"
    else:
        text = f"{name} < min τ measured ({c['measured'][0]:g})"
    return text + (" (a seed's bound used)" if c["bounded"] else "")


def summarize(per_seed: list[dict[str, Any]], scratch_flops: float) -> dict[str, Any]:
    """Mean ± std over seeds of FLOPs / C(τ), final loss, both savings (each end of a bound averaged: a seed with a
    bound makes the mean a bound of the same kind) and Δ at equal compute."""
    out: dict[str, Any] = {
        "flops_over_scratch": mean_std([s["flops"] / scratch_flops for s in per_seed]),
        "loss": mean_std([s["loss"] for s in per_seed]),
        "delta_vs_frontier": mean_std([s["delta_vs_frontier"] for s in per_seed]),
        "sizes_spanning": min(s["sizes_spanning"] for s in per_seed),
    }
    for key in ("vs_target", "vs_frontier"):
        values = [s[key] for s in per_seed]
        bounds = {v["bound"] for v in values} - {None}
        out[key] = {
            "low": statistics.mean(v["low"] for v in values),
            "high": statistics.mean(v["high"] for v in values),
            "std": statistics.stdev(v["low"] for v in values) if len(values) > 1 and not bounds else 0.0,
            "bounded": sum(v["bound"] is not None for v in values),
            "n": len(values),
            "bound": None if not bounds else bounds.pop() if len(bounds) == 1 else "range",
        }
    return out


def format_saving(summary: dict[str, Any]) -> str:
    """A saving cell: `x% ± s`, or `≤ x%` (upper bound), `≥ x%` (lower bound), `x%…y%` (between), with how many
    seeds are bounds."""
    low, high, bound = summary["low"], summary["high"], summary["bound"]
    if bound is None:
        return format_summary({"mean": low, "std": summary["std"], "n": summary["n"], "reached": summary["n"]})
    if bound == "upper" or (bound == "range" and low == -math.inf):
        text = f"≤ {high:.1%}"
    elif bound == "lower" or high == 1.0:
        text = f"≥ {low:.1%}"
    else:
        text = f"{low:.1%}…{high:.1%}"
    return text + f" ({summary['bounded']} of {summary['n']} seeds outside the measured losses)"


def markdown(result: dict[str, Any]) -> str:
    target, counts, step_tokens = result["target"], result["params"], result["tokens_per_step"]
    tuned_at = result["args"]["tune_at"]
    lines = [
        f"Target {target} ({counts['non_embedding']:,} non-embedding parameters, {counts['with_embedding']:,} with "
        f"embeddings); frontier {', '.join(result['sizes'])}, scratch curves at τ = "
        f"{', '.join(result['curve_taus'])}; {result['args']['scheduler']} annealed at every run's own budget; "
        f"seeds {result['args']['seeds']}, LRs tuned on seed {result['args']['tune_seed']}"
        + (f" at τ = {tuned_at:g} only and reused at every τ" if tuned_at is not None else " at every τ")
        + ". Staged methods count every stage (all compute, nothing sunk)"
        + (
            "; a grow:/ki: row places the run with its existing model's training sunk (not charged; KI's teacher "
            "forward passes are), its `(all compute)` row with that training's FLOPs added"
            if result.get("sources")
            else ""
        ),
        *(
            [""] + [source_line(size, s, result) for size, s in result["sources"].items()]
            if result.get("sources")
            else []
        ),
        "",
        "| τ (non-emb. / all params) | run | FLOPs / scratch | final loss | saving vs target scratch | saving vs "
        "frontier | Δ loss vs frontier at equal compute | peak LR (configs tuned) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for tau in result["taus"]:
        budget = result["plan"][tau]
        tpp = tokens_per_param(budget["steps"], step_tokens, counts)
        tuning = result["tuning"][tau]
        for name, s in result["summary"][tau].items():
            delta = format_summary(s["delta_vs_frontier"], pct=False).replace("not reached", "outside the budgets")
            if s["delta_vs_frontier"]["mean"] is not None and s["sizes_spanning"] < len(result["sizes"]):
                delta += f" (min over {s['sizes_spanning']} of {len(result['sizes'])} sizes)"
            base = name.removesuffix(ALL_COMPUTE)
            run = name if base in result["args"]["methods"] else f"scratch {name}"
            lr = tuning["best"][base]
            lines.append(
                f"| {tpp['non_embedding']:.3g} / {tpp['with_embedding']:.3g} | {run} | "
                f"{format_summary(s['flops_over_scratch'], pct=False)} | {format_summary(s['loss'], pct=False)} | "
                f"{format_saving(s['vs_target'])} | {format_saving(s['vs_frontier'])} | {delta} | "
                f"{lr:g} ({tuning['configs_tried'][base]}) |"
            )
    found = result.get("zero_crossing") or {}
    if len(result["taus"]) > 1 and found:
        lines += [
            "",
            "Where the saving vs target scratch reaches zero (mean over seeds, linear in log τ between the table's τ): "
            + "; ".join(format_crossing(name, c) for name, c in found.items()),
        ]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    """Final loss vs total FLOPs (mean over seeds): every frontier size's annealed points, the frontier envelope of
    those means, each method's points."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    means = {
        name: sorted(
            (
                statistics.mean(r[name][tau]["flops"] for r in result["runs"]),
                statistics.mean(r[name][tau]["loss"] for r in result["runs"]),
            )
            for tau in result["runs"][0][name]
        )
        for name in result["runs"][0]
    }
    for size in result["sizes"]:
        ax.plot(*zip(*means[size]), "o-", alpha=0.6, label=f"scratch {size}")
    envelope = frontier({size: means[size] for size in result["sizes"]})
    ax.plot([c for c, _, _ in envelope], [loss for _, loss, _ in envelope], "k--", linewidth=1.5, label="frontier")
    for i, name in enumerate(m for m in result["args"]["methods"] if m != "scratch"):
        color = f"C{i + len(result['sizes'])}"
        ax.plot(*zip(*means[name]), "s", markersize=7, color=color, label=name)
        if reuse_of(name) is not None:  # the same runs with their source's training added
            sunk = sorted(
                (
                    statistics.mean(r[name][tau]["flops"] + r[name][tau]["source_flops"] for r in result["runs"]),
                    statistics.mean(r[name][tau]["loss"] for r in result["runs"]),
                )
                for tau in result["runs"][0][name]
            )
            ax.plot(*zip(*sunk), "s", markersize=7, mfc="none", color=color, label=name + ALL_COMPUTE)
    ax.set_xscale("log")
    finish_axes(
        ax,
        "total training FLOPs (every stage counted)",
        "final validation loss (annealed at each budget)",
        f"{result['target']}: methods vs the scratch frontier",
        legend_size=7,
    )
    save_png(fig, path)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Tune, train and place every run (module docstring); returns the result written to the JSON."""
    out, target = Path(args.out), args.target
    sizes = list(dict.fromkeys([*args.frontier, target]))
    methods = [m for m in args.methods if m != "scratch"]
    check_methods(methods, target, args.data)  # before any training
    sources = prepare_sources(methods, target, args)
    taus = [f"{t:g}" for t in args.tokens_per_param]
    curve_taus = [f"{t:g}" for t in sorted(set(args.tokens_per_param) | set(args.curve_tokens_per_param))]
    budgets = plan(target, sizes, [float(t) for t in curve_taus], args.batch, args.data)
    names_at = {tau: [*sizes, *(methods if tau in taus else [])] for tau in curve_taus}
    if args.tune_at is not None:
        at = f"{args.tune_at:g}"
        shared = tune(
            [*sizes, *methods], target, at, plan(target, sizes, [args.tune_at], args.batch, args.data)[at], args
        )
        tuning = {tau: shared for tau in curve_taus}
    else:
        tuning = {tau: tune(names_at[tau], target, tau, budgets[tau], args) for tau in curve_taus}
    runs = [
        {
            name: {
                tau: point(
                    train(
                        name,
                        target,
                        budgets[tau],
                        tuning[tau]["best"][name],
                        seed,
                        out / f"tau{tau}" / f"seed{seed}" / name,
                        args,
                    ),
                    sunk=reuse_of(name) is not None,
                )
                for tau in curve_taus
                if name in names_at[tau]
            }
            for name in [*sizes, *methods]
        }
        for seed in args.seeds
    ]
    placed = [analyse(r, target, sizes) for r in runs]
    summary = {
        tau: {name: summarize([p[name][tau] for p in placed], budgets[tau]["flops"]) for name in rows(sizes, methods)}
        for tau in taus
    }
    return {
        "args": vars(args),
        "target": target,
        "sizes": sizes,
        "taus": taus,
        "curve_taus": curve_taus,
        "params": model_param_counts(
            model_at(*parse_size(target)), args.data["tokenizer"]["train_vocab_size"], args.data["seq_len"]
        ),
        "tokens_per_step": tokens_per_step({"per_device_train_batch_size": args.batch}, args.data),
        "plan": budgets,
        "tuning": tuning,
        "runs": runs,
        "placed": placed,
        "sources": sources,
        "summary": summary,
        "zero_crossing": crossings(summary, rows([], methods)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="64x4", help="HxL of the model users want")
    parser.add_argument("--tokens-per-param", type=float, nargs="+", default=[5.0, 20.0], help="τ of the table")
    parser.add_argument(
        "--curve-tokens-per-param",
        type=float,
        nargs="*",
        default=[],
        help="more τ for the scratch curves only (widen the range where savings need no bound)",
    )
    parser.add_argument("--frontier", nargs="+", default=["48x4", "64x4", "96x4"], help="scratch sizes HxL")
    parser.add_argument("--methods", nargs="+", default=["scratch", "depth", "both@0.8"])
    parser.add_argument("--lr-grid", type=float, nargs="+", default=[1e-3, 2e-3, 4e-3, 8e-3])
    parser.add_argument("--max-extensions", type=int, default=3, help="×2 grid extensions until the best is interior")
    parser.add_argument("--tune-seed", type=int, default=100)
    parser.add_argument("--tune-at", type=float, help="tune at this τ only and reuse its LRs at every τ")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--scheduler", choices=["cosine", "wsd"], default="wsd")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument(
        "--source-tokens-per-param",
        type=float,
        default=20.0,
        help="the grow:/ki: existing models' training: this many tokens per non-embedding parameter of the TARGET",
    )
    parser.add_argument("--source-lr", type=float, default=8e-3, help="the existing models' peak LR")
    parser.add_argument("--corpus", help="a text file or folder (bench.corpus writes one); default: the stdlib")
    parser.add_argument("--out", default=f"runs/{STEM}")
    args = parser.parse_args(argv)
    if args.tune_seed in args.seeds:
        parser.error("the tune seed must not be reported: --tune-seed is in --seeds")
    if any(reuse_of(m) for m in args.methods) and SOURCE_SEED in [*args.seeds, args.tune_seed]:
        parser.error(f"seed {SOURCE_SEED} trains the existing models: it must not be in --seeds or --tune-seed")
    args.data = corpus_data(args.corpus)
    result = bench(args)
    out = Path(args.out)
    write_json(out / f"{STEM}.json", result)
    write_table(out, STEM, markdown(result), lambda path: plot(result, path))


if __name__ == "__main__":
    sys.exit(main())

"""Fit the reuse law (`kinherit.plan.law`) to kinherit's own measurements and write it as package data.

    python -m bench.fit_reuse_law --from RUN_DIR_OR_JSON [...] [--points bench/reuse_points.json]
        [--out kinherit/plan/reuse_law.json] [--table docs/results/reuse_law.md]
        [--held-out-table docs/results/reuse_law_held_out.md]

Inputs: where_users_train.json files (`bench/where_users_train.py`; a folder stands for the file in it), and the
hand-transcribed points of reuse_points.json (older tables, each point naming its table, corpus and protocol),
used only for methods that no where_users_train.json measures. A point is one seed at one setting (N, τ, τ_base):
- a where_users_train method m at τ: saving = its `vs_target` saving (a seed outside the measured losses counted at
  its bound, and counted in `bounded`), Δ loss = L_m − L_scratch(target) on the same seed and tokens; `grow:HxL`
  and `ki:HxL` are the law's `grow` and `ki` at τ_base = the existing model's tokens per its own non-embedding
  parameter, their rows with that model's training sunk (as `kinherit plan` prices a `--have` model);
- `frontier` (scratch at the compute-optimal size, same FLOPs), at every scratch-curve τ of a bench with ≥ 2 sizes
  (one size measures no frontier): saving = 1 − C*(L_t) / C_t
  = 1 − 1 / (1 − s_t), s_t the target's saving vs the frontier; Δ loss = L*(C_t) − L_t (= −delta_vs_frontier); a
  point where fewer than all sizes' budgets span C_t is a bound (the min is over fewer sizes) and counted as one;
- a transcribed point given as mean ± std over n seeds enters as n values with that mean and sample std.
Per method and quantity: least squares on the points (`fit`, the law's form in `kinherit.plan.law`), 90%
prediction intervals. The held-out check: for every fit with ≥ 3 distinct settings, the first and last setting
(in N, τ, τ_base order) are left out, the rest fitted, and the two predicted; the file records predicted against
measured (`held_out`), and --table writes them (and the fitted law) as markdown. The shipped law is then fitted
on every point.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.existing_models import own_tokens_per_param, reuse_of
from bench.protocol import interval_value
from kinherit.io import atomic_file, read_json, write_json
from kinherit.plan.law import VARIABLES, Fit

STEM = "where_users_train"
POINTS = Path(__file__).parent / "reuse_points.json"
COVERAGE = 0.9
COLUMN_ORDER = ("tau", "base_tau", "n")
"""Slopes are added in this order while the settings identify them: τ first (the issue's question), then the base's
training (Liew & Kato), then N."""
T90 = {1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860, 9: 1.833, 10: 1.812,
       12: 1.782, 15: 1.753, 20: 1.725, 30: 1.697, 60: 1.671, 120: 1.658}  # fmt: skip
"""Student's t quantile at 0.95 (a two-sided 90% interval) by degrees of freedom."""

Point = dict[str, Any]


def t90(dof: int) -> float:
    """t_{0.95}(dof): the table's entry, interpolated in 1/dof between entries, 1.645 beyond 120."""
    if dof in T90:
        return T90[dof]
    if dof > 120:
        return 1.645 + (T90[120] - 1.645) * 120 / dof
    low = max(d for d in T90 if d < dof)
    high = min(d for d in T90 if d > dof)
    w = (1 / dof - 1 / high) / (1 / low - 1 / high)
    return T90[high] + w * (T90[low] - T90[high])


def _law_method(method: str, result: dict[str, Any]) -> dict[str, Any]:
    """The law's method of a where_users_train method: a staged schedule is its own; `grow:HxL` / `ki:HxL` is `grow` /
    `ki` with τ_base = the existing model's training tokens per its own non-embedding parameter (its row with the
    existing model's training sunk, as `kinherit plan` prices a `--have` model)."""
    reuse = reuse_of(method)
    if reuse is None:
        return {"method": method}
    kind, size = reuse
    return {"method": kind, "base_tau": own_tokens_per_param(size, result)}


def bench_points(result: dict[str, Any], source: str) -> list[Point]:
    """The points of one where_users_train.json (module docstring)."""
    target, n = result["target"], result["params"]["non_embedding"]
    corpus = Path(result["args"]["corpus"]).name if result["args"].get("corpus") else "stdlib"
    protocol = f"bench.where_users_train, {result['args']['scheduler']} annealed at each budget"
    methods = [m for m in result["args"]["methods"] if m != "scratch"]
    tau_of = {t: result["plan"][t]["steps"] * result["tokens_per_step"] / n for t in result["curve_taus"]}
    base = {"n": n, "source": source, "corpus": corpus, "protocol": protocol}
    law_method = {m: _law_method(m, result) for m in methods}
    points = []
    for seed, (runs, placed) in enumerate(zip(result["runs"], result["placed"])):
        for tau in result["taus"]:
            for m in methods:
                saving, bounded = interval_value(placed[m][tau]["vs_target"])
                delta = runs[m][tau]["loss"] - runs[target][tau]["loss"]
                points.append({**base, **law_method[m], "tau": tau_of[tau], "seed": seed, "saving": saving,
                               "loss_delta": delta, "bounded": bounded})  # fmt: skip
        for tau in result["curve_taus"] if len(result["sizes"]) > 1 else []:  # one size measures no frontier
            own = placed[target][tau]
            s_t, bounded = interval_value(own["vs_frontier"])
            bounded = bounded or own["sizes_spanning"] < len(result["sizes"])  # a min over fewer sizes: a bound
            delta = own["delta_vs_frontier"]
            points.append({**base, "method": "frontier", "tau": tau_of[tau], "seed": seed,
                           "saving": 1 - 1 / (1 - s_t) if s_t < 1 else None,
                           "loss_delta": None if delta is None else -delta, "bounded": bounded})  # fmt: skip
    return points


def _seeds(value: dict[str, Any]) -> list[float]:
    """Per-seed values of a transcribed quantity: `seeds` as given, or n values with mean `mean` and sample std
    `std` (m + s·z_i, z evenly spaced with sample std 1)."""
    if "seeds" in value:
        return list(value["seeds"])
    n, mean, std = value["n"], value["mean"], value["std"]
    z = np.linspace(-1.0, 1.0, n)
    z = z / (z.std(ddof=1) if n > 1 else 1.0)
    return [float(mean + std * v) for v in z]


def transcribed_points(data: dict[str, Any], measured: set[str]) -> list[Point]:
    """The points of reuse_points.json for methods not in `measured`, one per (transcribed) seed."""
    points = []
    for p in data["points"]:
        if p["method"] in measured:
            continue
        values = {q: _seeds(p[q]) for q in ("saving", "loss_delta") if p.get(q)}
        n = max(len(v) for v in values.values())
        for seed in range(n):
            point = {k: p.get(k) for k in ("method", "n", "tau", "base_tau", "source", "corpus", "protocol")}
            point.update({q: v[seed] if seed < len(v) else None for q, v in values.items()})
            points.append({"seed": seed, "bounded": False, "saving": None, "loss_delta": None, **point})
    return points


def _setting(point: Point) -> tuple[float, ...]:
    return tuple(point.get(k) or 0.0 for k in ("n", "tau", "base_tau"))


MIN_SPAN = 2.0
"""A slope is fitted only in a variable whose measured values span at least this factor (a 1.3× spread of N says
nothing about N)."""


def _spans(points: list[Point], key: str) -> bool:
    values = [p.get(key) for p in points]
    return all(values) and max(values) >= MIN_SPAN * min(values)


def fit(points: list[Point], quantity: str) -> dict[str, Any] | None:
    """Least squares of `quantity` on the logs of the setting (kinherit.plan.law), with the slopes the settings
    identify (`COLUMN_ORDER`, a column only where it spans ≥ MIN_SPAN, settings > coefficients); None without points."""
    points = [p for p in points if p.get(quantity) is not None and np.isfinite(p[quantity])]
    if not points:
        return None
    settings = sorted({_setting(p) for p in points})
    columns = [c for c in COLUMN_ORDER if _spans(points, c)]

    def design(rows: list[Point], cols: list[str], center: np.ndarray) -> np.ndarray:
        logs = np.array([[np.log10(r[c]) for c in cols] for r in rows]).reshape(len(rows), len(cols))
        return np.hstack([np.ones((len(rows), 1)), logs - center])

    while columns:
        distinct = design([dict(zip(("n", "tau", "base_tau"), s)) for s in settings], columns, np.zeros(len(columns)))
        if len(settings) > len(columns) + 1 and np.linalg.matrix_rank(distinct) == len(columns) + 1:
            break
        columns.pop()
    center = np.array([np.mean([np.log10(p[c]) for p in points]) for c in columns])
    x, y = design(points, columns, center), np.array([p[quantity] for p in points])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    dof = len(points) - x.shape[1]
    rss = float(((y - x @ coef) ** 2).sum())
    keys = [k for k in ("n", "tau", "base_tau") if all(p.get(k) for p in points)]
    return {
        "columns": columns,
        "center": center.tolist(),
        "coef": coef.tolist(),
        "xtx_inv": np.linalg.inv(x.T @ x).tolist(),
        "residual_var": rss / dof if dof > 0 else None,
        "dof": dof,
        "t": t90(dof) if dof > 0 else None,
        "points": len(points),
        "settings": len(settings),
        "bounded": sum(p["bounded"] for p in points),
        "range": {k: [min(p[k] for p in points), max(p[k] for p in points)] for k in keys},
    }


def held_out(points: list[Point], method: str, quantity: str) -> list[dict[str, Any]]:
    """The held-out check of one fit (module docstring): predicted against measured at the first and last of ≥ 3
    settings, from a fit that never saw them."""
    usable = [p for p in points if p.get(quantity) is not None]
    settings = sorted({_setting(p) for p in usable})
    if len(settings) < 3:
        return []
    out = {settings[0], settings[-1]}
    law = fit([p for p in usable if _setting(p) not in out], quantity)
    rows = []
    for s in sorted(out):
        values = [p[quantity] for p in usable if _setting(p) == s]
        setting = dict(zip(("n", "tau", "base_tau"), s))
        low, mid, high = Fit.from_json(law).predict({k: v for k, v in setting.items() if v})
        mean = statistics.mean(values)
        rows.append({
            "method": method, "quantity": quantity, "setting": {k: v for k, v in setting.items() if v},
            "measured": {"mean": mean, "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)},
            "predicted": [low, mid, high], "inside": low <= mean <= high,
            "fitted_on": law["settings"], "columns": law["columns"],
        })  # fmt: skip
    return rows


def build(sources: list[str], points_file: Path | None, regenerate: str) -> dict[str, Any]:
    """reuse_law.json from the bench outputs `sources` and the transcribed points."""
    points: list[Point] = []
    for source in sources:
        path = Path(source) / f"{STEM}.json" if Path(source).is_dir() else Path(source)
        points += bench_points(read_json(path), str(path))
    if points_file is not None:
        points += transcribed_points(read_json(points_file), {p["method"] for p in points})
    methods, checks = {}, []
    for method in dict.fromkeys(p["method"] for p in points):
        mine = [p for p in points if p["method"] == method]
        methods[method] = {
            "sources": list(dict.fromkeys(p["source"] for p in mine)),
            "corpus": sorted({p["corpus"] for p in mine}),
            "protocol": sorted({p["protocol"] for p in mine}),
            **{q: fit(mine, q) for q in ("saving", "loss_delta")},
        }
        checks += [row for q in ("saving", "loss_delta") for row in held_out(mine, method, q)]
    return {
        "form": "y = b0 + Σ_j b_j·(log10 x_j − c_j), x ⊂ (N, τ, τ_base); kinherit.plan.law",
        "coverage": COVERAGE,
        "regenerate": regenerate,
        "methods": methods,
        "held_out": checks,
    }


def _fmt(quantity: str, value: float) -> str:
    return f"{value:.1%}" if quantity == "saving" else f"{value:+.3f}"


def _range(fit: dict[str, Any]) -> str:
    return "; ".join(
        f"{VARIABLES[k]} {low:.3g}" + (f"–{high:.3g}" if high != low else "") for k, (low, high) in fit["range"].items()
    )


def _coefficients(quantity: str, fit: dict[str, Any]) -> str:
    """`b0 + b·log10(τ/τc) ...` with the intercept at the centre of the data."""
    terms = [_fmt(quantity, fit["coef"][0])]
    for column, center, b in zip(fit["columns"], fit["center"], fit["coef"][1:]):
        slope = f"{b:+.1%}" if quantity == "saving" else f"{b:+.3f}"
        terms.append(f"{slope}·log10({VARIABLES[column]}/{10**center:.3g})")
    return " ".join(terms)


def markdown(law: dict[str, Any]) -> str:
    """The fitted law (one row per method and quantity: form, coefficients, residual spread, range, data) and the
    held-out check (`held_out_markdown`)."""
    lines = [
        "| method | quantity | fit (90% prediction interval ± t·s·√(1 + leverage)) | s (residual) | points "
        "(settings, seeds outside the measured losses) | range | data |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, m in law["methods"].items():
        for q in ("saving", "loss_delta"):
            fit = m[q]
            if fit is None:
                continue
            s = "—" if fit["residual_var"] is None else _fmt(q, fit["residual_var"] ** 0.5).lstrip("+")
            lines.append(
                f"| {method} | {q.replace('_', ' ')} | {_coefficients(q, fit)} | {s} | {fit['points']} "
                f"({fit['settings']}, {fit['bounded']}) | {_range(fit)} | {'; '.join(m['corpus'])}: "
                f"{'; '.join(m['protocol'])} |"
            )
    return "\n".join(lines) + "\n\n" + held_out_markdown(law)


def held_out_markdown(law: dict[str, Any]) -> str:
    """The held-out check: per left-out setting, predicted (90% interval) against measured mean ± std over seeds."""
    lines = [
        "| method | quantity | held-out setting | fitted on (settings, slopes) | predicted (90% interval) | measured | "
        "inside |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in law["held_out"]:
        q, (low, mid, high), m = row["quantity"], row["predicted"], row["measured"]
        setting = ", ".join(f"{VARIABLES[k]} {v:.3g}" for k, v in row["setting"].items())
        slopes = ", ".join(VARIABLES[c] for c in row["columns"]) or "constant"
        lines.append(
            f"| {row['method']} | {q.replace('_', ' ')} | {setting} | {row['fitted_on']} ({slopes}) | "
            f"{_fmt(q, mid)} [{_fmt(q, low)}, {_fmt(q, high)}] | {_fmt(q, m['mean'])} ± "
            f"{_fmt(q, m['std']).lstrip('+')} (n={m['n']}) | {'yes' if row['inside'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="sources", nargs="*", default=[], help="where_users_train.json or its folder")
    parser.add_argument("--points", default=str(POINTS), help="transcribed points ('' for none)")
    parser.add_argument("--out", default="kinherit/plan/reuse_law.json")
    parser.add_argument("--table", help="write the law and its held-out check as markdown tables here")
    parser.add_argument("--held-out-table", help="write the held-out check alone as a markdown table here")
    args = parser.parse_args(argv)
    command = "python -m bench.fit_reuse_law " + " ".join(sys.argv[1:] if argv is None else argv)
    law = build(args.sources, Path(args.points) if args.points else None, command.strip())
    write_json(args.out, law)
    for path, text in ((args.table, markdown), (args.held_out_table, held_out_markdown)):
        if path:
            with atomic_file(path) as handle:
                handle.write(text(law))
    print(markdown(law), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`kinherit report`: compare runs against a baseline by the compute each needs to reach its loss.

For every run: final validation loss and perplexity, mean training tokens/s, total FLOPs (teacher
forward passes and data-selection scoring included), and the FLOPs needed to first reach the baseline's final validation loss
(`savings.compute_to_reach`), as a saving fraction and a speed-up. The compute that produced a
teacher or a grown model's source (their own pre-training) is a sunk cost: reported per run as
`sunk_flops`, never mixed into the saving.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from kinherit.config import read_yaml
from kinherit.errors import KinheritError
from kinherit.io import atomic_file, write_json
from kinherit.metrics.log import METRICS_FILE, read_metrics
from kinherit.metrics.plots import plot_alpha, plot_curves
from kinherit.metrics.runs import Run, load_run
from kinherit.metrics.savings import compute_to_reach, saving


@dataclass(frozen=True)
class RunResult:
    name: str
    final_val_loss: float
    final_val_ppl: float
    total_flops: float
    teacher_inference_flops: float
    selection_flops: float
    sunk_flops: float
    flops_to_baseline_loss: float | None
    saving_fraction: float | None
    speedup: float | None
    tokens_to_baseline_loss: float | None
    tokens_per_s: float | None


def _run_flops_of(model_dir: Path) -> float:
    """Total training FLOPs recorded by the run that wrote `model_dir` (`<run>/model`), else 0."""
    events = read_metrics(model_dir.parent / METRICS_FILE)
    return float(events[-1]["flops"]) if events else 0.0


def sunk_flops(run: Run) -> float:
    """Pre-training compute of the teacher and of a grown initialisation's source model."""
    config_path = run.path / "config.resolved.yaml"
    if not config_path.is_file():
        return 0.0
    config = read_yaml(config_path.read_text())
    total = 0.0
    teacher = (config.get("teacher") or {}).get("path")
    if teacher:
        total += _run_flops_of(Path(teacher))
    start = (config.get("model") or {}).get("from")
    if start:
        growth = Path(start) / "growth.json"
        source = read_yaml(growth.read_text()).get("source") if growth.is_file() else start
        if source and Path(source).resolve() != Path(teacher or "").resolve():
            total += _run_flops_of(Path(source))
    return total


def evaluate_run(run: Run, baseline: Run) -> RunResult:
    target = baseline.evals[-1]["val_loss"]
    baseline_flops = compute_to_reach(baseline.curve("flops"), target)
    if not math.isfinite(target) or not baseline_flops:
        raise KinheritError(
            f"baseline {baseline.name} has no usable target (final val loss {target}, reached after "
            f"{baseline_flops} FLOPs: it never improved on its first evaluation); choose another --baseline"
        )
    run_flops = compute_to_reach(run.curve("flops"), target)
    fraction, speedup = saving(run_flops, baseline_flops)
    speeds = [e["tokens_per_s"] for e in run.train if "tokens_per_s" in e]
    final = run.evals[-1]["val_loss"]
    return RunResult(
        name=run.name,
        final_val_loss=final,
        final_val_ppl=math.exp(min(final, 50.0)),
        total_flops=float(run.evals[-1]["flops"]),
        teacher_inference_flops=float(run.evals[-1].get("teacher_flops", 0.0)),
        selection_flops=float(run.evals[-1].get("selection_flops", 0.0)),
        sunk_flops=sunk_flops(run),
        flops_to_baseline_loss=run_flops,
        saving_fraction=fraction,
        speedup=None if speedup is None or math.isinf(speedup) else speedup,
        tokens_to_baseline_loss=compute_to_reach(run.curve("tokens"), target),
        tokens_per_s=sum(speeds) / len(speeds) if speeds else None,
    )


def _fmt_flops(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.3g}"


def markdown_table(results: list[RunResult], baseline: str, target: float) -> str:
    lines = [
        f"Baseline: **{baseline}**, final validation loss {target:.4f}. FLOPs include teacher forward passes and "
        "data-selection scoring; "
        "`sunk` is the teacher's / grown source's own pre-training, not counted in the saving.",
        "",
        "| run | final val loss | ppl | FLOPs to baseline loss | saving | speed-up | teacher FLOPs | selection FLOPs | sunk FLOPs | tokens/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        saved = "—" if r.saving_fraction is None else f"{r.saving_fraction:.1%}"
        speed = "—" if r.speedup is None else f"{r.speedup:.2f}×"
        if r.saving_fraction == 1.0:
            speed = "∞ (at init)"
        tps = "—" if r.tokens_per_s is None else f"{r.tokens_per_s:,.0f}"
        lines.append(
            f"| {r.name} | {r.final_val_loss:.4f} | {r.final_val_ppl:.2f} | {_fmt_flops(r.flops_to_baseline_loss)} | "
            f"{saved} | {speed} | {r.teacher_inference_flops:.3g} | {r.selection_flops:.3g} | {r.sunk_flops:.3g} | {tps} |"
        )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Report:
    baseline: str
    target_loss: float
    results: list[RunResult]
    markdown: str


def build_report(run_dirs: list[str | Path], out: str | Path, baseline: str | Path | None = None) -> Report:
    """Write report.md, results.json and plots to `out`; the baseline defaults to the first run."""
    runs = [load_run(p) for p in run_dirs]
    base = load_run(baseline) if baseline is not None else runs[0]
    if baseline is not None and all(r.path.resolve() != base.path.resolve() for r in runs):
        runs.insert(0, base)
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise KinheritError(f"run folder names must be distinct to label the report: {names}")
    results = [evaluate_run(r, base) for r in runs]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    target = base.evals[-1]["val_loss"]
    plots = plot_curves(runs, target, out)
    if any("alpha" in e for r in runs for e in r.train):
        plots.append(plot_alpha(runs, out))
    write_json(out / "results.json", {"baseline": base.name, "baseline_final_val_loss": target,
                                      "runs": [asdict(r) for r in results]})
    table = markdown_table(results, base.name, target)
    images = "\n".join(f"![{p.stem}]({p.name})" for p in plots)
    with atomic_file(out / "report.md") as handle:
        handle.write(f"# kinherit report\n\n{table}\n{images}\n")
    return Report(base.name, target, results, table)

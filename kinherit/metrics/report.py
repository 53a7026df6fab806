"""`kinherit report`: compare runs against a baseline by the compute each needs to reach its loss.

For every run: final validation loss and perplexity, mean training tokens/s, total FLOPs (teacher
forward passes and data-selection scoring included), and the FLOPs needed to first reach the baseline's final validation
loss (`savings.compute_to_reach`), as a saving fraction and a speed-up. The compute that produced a
teacher or a grown model's source (their own pre-training, and that of their own teachers and sources,
recursively: `lineage.Ancestors`) is a sunk cost: reported per run as `sunk_flops`, kept out of `saving`,
and paid for in `saving_including_sunk`. Runs validated on other data than the baseline are refused.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from kinherit.errors import KinheritError
from kinherit.io import atomic_file, write_json
from kinherit.metrics.evaluate import DEFAULT_PROMPT, SAMPLE_TOKENS, sample, sampling_description
from kinherit.metrics.lineage import RUN_FILE, Ancestors, read_run_record, validation_differences
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
    sunk_unknown: list[str]
    """Ancestor model folders no kinherit run produced: their pre-training is not known, so not in `sunk_flops`."""
    flops_to_baseline_loss: float | None
    saving_fraction: float | None
    saving_including_sunk: float | None
    """1 − (FLOPs to the baseline's loss + sunk) / (the baseline's + its sunk): the saving once the teacher's and the
    growth source's own pre-training are paid for (None when not reached or a sunk cost is unknown)."""
    speedup: float | None
    tokens_to_baseline_loss: float | None
    tokens_per_s: float | None


def sunk_flops(run: Run) -> float:
    """Pre-training compute behind `run`: every ancestor run's total FLOPs, walked recursively through the
    lineage its run.json records (teacher, teacher cache, model.from, growth source), each run once."""
    return Ancestors.of_run(run.path).flops()


def check_comparable(runs: list[Run], baseline: Run) -> None:
    """Every run must have been validated on the baseline's validation data (same fingerprint), else one line
    naming the run and the fields that differ."""
    records = {r.name: (read_run_record(r.path) or {}).get("data") for r in [baseline, *runs]}
    for name, data in records.items():
        if data is None:
            raise KinheritError(
                f"run {name} has no validation-data record ({RUN_FILE}), so kinherit cannot check that it is "
                "comparable with the others; train it with this version of kinherit"
            )
    base = records[baseline.name]
    for run in runs:
        differ = validation_differences(base, records[run.name])
        if differ:
            shown = ", ".join(f"{key} {base.get(key)!r} vs {records[run.name].get(key)!r}" for key in differ[:3])
            raise KinheritError(
                f"run {run.name} was validated on other data than the baseline {baseline.name} ({shown}): their "
                "losses are not comparable; compare runs that share data.sources, the split settings and the "
                "tokenizer"
            )


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
    ancestors, base_ancestors = Ancestors.of_run(run.path), Ancestors.of_run(baseline.path)
    sunk, base_sunk = ancestors.known_flops(), base_ancestors.known_flops()
    with_sunk = None
    if run_flops is not None and sunk is not None and base_sunk is not None:
        with_sunk = 1.0 - (run_flops + sunk) / (baseline_flops + base_sunk)
    speeds = [e["tokens_per_s"] for e in run.train if "tokens_per_s" in e]
    final = run.evals[-1]["val_loss"]
    return RunResult(
        name=run.name,
        final_val_loss=final,
        final_val_ppl=math.exp(min(final, 50.0)),
        total_flops=float(run.evals[-1]["flops"]),
        teacher_inference_flops=float(run.evals[-1].get("teacher_flops", 0.0)),
        selection_flops=float(run.evals[-1].get("selection_flops", 0.0)),
        sunk_flops=ancestors.flops(),
        sunk_unknown=ancestors.external,
        flops_to_baseline_loss=run_flops,
        saving_fraction=fraction,
        saving_including_sunk=with_sunk,
        speedup=None if speedup is None or math.isinf(speedup) else speedup,
        tokens_to_baseline_loss=compute_to_reach(run.curve("tokens"), target),
        tokens_per_s=sum(speeds) / len(speeds) if speeds else None,
    )


def _fmt_flops(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.3g}"


def markdown_table(results: list[RunResult], baseline: str, target: float) -> str:
    lines = [
        f"Baseline: **{baseline}**, final validation loss {target:.4f}. FLOPs include teacher forward passes and "
        "data-selection scoring; `sunk` is the teacher's / grown source's own pre-training (their lineage walked "
        "recursively), not counted in `saving`; `saving incl. sunk` pays for it too.",
        "",
        "| run | final val loss | ppl | FLOPs to baseline loss | saving | speed-up | teacher FLOPs | selection "
        "FLOPs | sunk FLOPs | saving incl. sunk | tokens/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        saved = "—" if r.saving_fraction is None else f"{r.saving_fraction:.1%}"
        speed = "—" if r.speedup is None else f"{r.speedup:.2f}×"
        if r.saving_fraction == 1.0:
            speed = "∞ (at init)"
        tps = "—" if r.tokens_per_s is None else f"{r.tokens_per_s:,.0f}"
        sunk = f"{r.sunk_flops:.3g}" + (f" + unknown ({len(r.sunk_unknown)} external)" if r.sunk_unknown else "")
        with_sunk = "—" if r.saving_including_sunk is None else f"{r.saving_including_sunk:.1%}"
        lines.append(
            f"| {r.name} | {r.final_val_loss:.4f} | {r.final_val_ppl:.2f} | {_fmt_flops(r.flops_to_baseline_loss)} "
            f"| {saved} | {speed} | {r.teacher_inference_flops:.3g} | {r.selection_flops:.3g} | {sunk} | "
            f"{with_sunk} | {tps} |"
        )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Report:
    baseline: str
    target_loss: float
    results: list[RunResult]
    markdown: str


def samples_markdown(runs: list[Run], prompt: str) -> str:
    """A seeded, sampled continuation of `prompt` by each run's final causal LM (`<run>/model`; `evaluate.sample`);
    empty when none has one."""
    parts = []
    for run in runs:
        text = sample(run.path / "model", prompt) if (run.path / "model" / "config.json").is_file() else None
        if text is not None:
            parts.append(f"**{run.name}**\n\n```\n{text}\n```\n")
    if not parts:
        return ""
    return (
        f"## Samples\n\n{SAMPLE_TOKENS} new tokens after the prompt {prompt!r}, {sampling_description()}:\n\n"
        + "\n".join(parts)
    )


def build_report(
    run_dirs: list[str | Path], out: str | Path, baseline: str | Path | None = None, prompt: str | None = None
) -> Report:
    """Write report.md (with a sample of each causal LM's text), results.json and plots to `out`; the baseline
    defaults to the first run."""
    runs = [load_run(p) for p in run_dirs]
    base = load_run(baseline) if baseline is not None else runs[0]
    if baseline is not None and all(r.path.resolve() != base.path.resolve() for r in runs):
        runs.insert(0, base)
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise KinheritError(f"run folder names must be distinct to label the report: {names}")
    check_comparable(runs, base)
    results = [evaluate_run(r, base) for r in runs]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    target = base.evals[-1]["val_loss"]
    plots = plot_curves(runs, target, out)
    if any("alpha" in e for r in runs for e in r.train):
        plots.append(plot_alpha(runs, out))
    write_json(
        out / "results.json",
        {"baseline": base.name, "baseline_final_val_loss": target, "runs": [asdict(r) for r in results]},
    )
    table = markdown_table(results, base.name, target)
    images = "\n".join(f"![{p.stem}]({p.name})" for p in plots)
    with atomic_file(out / "report.md") as handle:
        handle.write(f"# kinherit report\n\n{table}\n{images}\n\n{samples_markdown(runs, prompt or DEFAULT_PROMPT)}")
    return Report(base.name, target, results, table)

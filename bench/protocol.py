"""The benches' one protocol: every step a bench repeats is written here, once (DESIGN.md, "Experiments as data").

A bench is a spec (its runs, sizes and tables) plus a thin `main` that calls these steps:

- sizes      `parse_size`, `model_at`, `DATA`: the llamas `HxL` the staged and KI benches name
- one run    `train_once` (a `kinherit pretrain` run at the protocol's settings), `train_run` (the demo's runner)
- budget     `tokens_per_step`, `tokens_per_param`, `budget_steps` (steps, or tokens per non-embedding parameter),
             `budget_line`, `flops_per_step`
- tuning     `tune_lr`: peak LR over a grid extended ×2 at an edge until each best is interior
- a result   `final_loss`, `compare` (savings at horizons, bounds where the target is not reached), `add_seed`
- frontier   `loss_at`, `frontier_loss`, `frontier`, `compute_to_loss`, `frontier_compute`, `saving_interval`,
             `against_frontier`: annealed scratch curves of several sizes, and a run's savings against them
- seeds      `mean_std`, `summarize_savings`, `format_summary`, `format_savings`
- params     `param_counts`, `non_embedding_params`, `model_param_counts`
- speed      `StepTimer`, `tokens_per_s`, `step_time`, `matmul_peak_gflops`
- output     `write_table`
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, PrinterCallback, Trainer, TrainerCallback

from kinherit.arch.catalog import FAMILIES
from kinherit.config import TRAIN_DEFAULTS, WSD, DataConfig, ModelConfig, validate_config
from kinherit.demo.experiment import train_run
from kinherit.errors import KinheritError
from kinherit.io import atomic_file
from kinherit.metrics.flops import flops_per_token
from kinherit.metrics.horizons import horizon_points, value_at
from kinherit.metrics.log import read_metrics
from kinherit.metrics.runs import load_run
from kinherit.metrics.savings import compute_to_reach, saving
from kinherit.train.pretrain import pretrain

__all__ = [
    "DATA",
    "HEAD_DIM",
    "StepTimer",
    "add_seed",
    "against_frontier",
    "budget_line",
    "budget_steps",
    "compare",
    "compute_to_loss",
    "corpus_data",
    "final_loss",
    "flops_per_step",
    "format_savings",
    "format_summary",
    "frontier",
    "frontier_compute",
    "frontier_loss",
    "loss_at",
    "matmul_peak_gflops",
    "mean_std",
    "model_at",
    "model_param_counts",
    "non_embedding_params",
    "param_counts",
    "parse_size",
    "saving_interval",
    "step_time",
    "summarize_savings",
    "tokens_per_s",
    "tokens_per_param",
    "tokens_per_step",
    "train_once",
    "train_run",
    "tune_lr",
    "write_table",
]

# ---------------------------------------------------------------------------------------------------- sizes

HEAD_DIM = 16
DATA = {"sources": ["stdlib"], "tokenizer": {"train_vocab_size": 2048}, "seq_len": 128, "val_fraction": 0.005}
"""The data section of every `train_once` run: Python's standard library, a 2048-token BPE, blocks of 128."""


def corpus_data(corpus: str | Path | None) -> dict[str, Any]:
    """`DATA` with its sources replaced by the text file or folder `corpus` (e.g. `bench.corpus`'s); `DATA` itself
    when None."""
    return DATA if corpus is None else {**DATA, "sources": [str(corpus)]}


def parse_size(text: str) -> tuple[int, int]:
    """`HxL` → (hidden H, layers L)."""
    hidden, layers = text.lower().split("x")
    return int(hidden), int(layers)


def model_at(hidden: int, layers: int) -> dict[str, Any]:
    """The `model:` section of the llama `HxL`: heads of 16, FFN 4·H."""
    return {
        "family": "llama",
        "hidden_size": hidden,
        "num_layers": layers,
        "num_heads": hidden // HEAD_DIM,
        "intermediate_size": 4 * hidden,
    }


# -------------------------------------------------------------------------------------------------- one run


def train_once(
    out: Path,
    model: dict[str, Any],
    steps: int,
    lr: float,
    seed: int,
    budget: int,
    batch: int,
    scheduler: str = "cosine",
    data: dict[str, Any] | None = None,
    **sections: Any,
) -> Path:
    """One pre-training run of the protocol in `out`, reused when finished: warm-up 5%, cosine (or WSD, decaying over
    the last 20%) over `steps`, evaluations every B/4, `lr` the peak LR of every stage, on `data` (default `DATA`);
    `sections` (growth, teacher, selection) are added to the config when not None."""
    if not (out / "model").is_dir():
        wsd = {"lr_scheduler_type": WSD} if scheduler == "wsd" else {}
        config = {
            "out": str(out),
            "data": data or DATA,
            "model": model,
            "train": {
                "max_steps": steps,
                "learning_rate": lr,
                "per_device_train_batch_size": batch,
                "warmup_steps": 0.05,
                "eval_steps": max(budget // 4, 1),
                "save_steps": steps,
                "logging_steps": max(budget // 20, 1),
                "seed": seed,
                "disable_tqdm": True,
                **wsd,
            },
            **{key: value for key, value in sections.items() if value is not None},
        }
        pretrain(validate_config(config))
    return out


def final_loss(run_dir: Path) -> float:
    """The validation loss at a run's last evaluation."""
    return float(load_run(run_dir).evals[-1]["val_loss"])


# --------------------------------------------------------------------------------------------------- budget


def tokens_per_step(train: dict[str, Any] | None = None, data: dict[str, Any] | None = None) -> int:
    """Tokens one optimizer step consumes on one device: batch × gradient accumulation × seq_len (the library's
    defaults where a section leaves a key out)."""
    train, data = {**TRAIN_DEFAULTS, **(train or {})}, data or {}
    seq_len = int(data.get("seq_len", DataConfig.model_fields["seq_len"].default))
    return int(train["per_device_train_batch_size"]) * int(train.get("gradient_accumulation_steps", 1)) * seq_len


def budget_steps(
    params: int, step_tokens: int, steps: int | None = None, tokens_per_param: float | None = None, multiple_of: int = 1
) -> int:
    """A run's budget in optimizer steps, given either as `steps` or as `tokens_per_param` tokens per non-embedding
    parameter (`params`): tokens_per_param · params / step_tokens rounded to a multiple of `multiple_of` (e.g. the
    evaluation interval, so that every horizon has an evaluation), at least `multiple_of`."""
    if (steps is None) == (tokens_per_param is None):
        raise ValueError("give the budget as steps or as tokens per parameter, not both or neither")
    if steps is not None:
        return int(steps)
    return max(multiple_of, round(tokens_per_param * params / step_tokens / multiple_of) * multiple_of)


def tokens_per_param(steps: int, step_tokens: int, counts: dict[str, int]) -> dict[str, float]:
    """The tokens of `steps` optimizer steps per parameter: per non-embedding parameter and per parameter with the
    embeddings (`counts` as `param_counts` gives them)."""
    return {key: steps * step_tokens / counts[key] for key in ("non_embedding", "with_embedding")}


def budget_line(steps: int, step_tokens: int, counts: dict[str, int], what: str = "B") -> str:
    """The header line that states at which tokens per parameter a table's figures hold."""
    tpp = tokens_per_param(steps, step_tokens, counts)
    return (
        f"{what} = {steps:,} steps × {step_tokens:,} tokens = {steps * step_tokens:,} tokens: "
        f"{tpp['non_embedding']:.3g} tokens per non-embedding parameter ({counts['non_embedding']:,}), "
        f"{tpp['with_embedding']:.3g} with embeddings ({counts['with_embedding']:,})"
    )


def flops_per_step(model: dict[str, Any], step_tokens: int, vocab: int = 2048, seq_len: int = 128) -> int:
    """Training FLOPs of one optimizer step of a fresh `model:` section, as a run counts them: step_tokens × 3 ×
    (2·N_matmul + 4·L·T·d_attn) (`kinherit.metrics.flops`)."""
    return step_tokens * flops_per_token(_meta_model(model, vocab, seq_len), seq_len).train


# --------------------------------------------------------------------------------------------------- tuning


def tune_lr(
    names: Iterable[str], grid: Iterable[float], evaluate: Callable[[float], dict[str, float]], max_extensions: int = 3
) -> dict[str, Any]:
    """Each run's best peak LR over one shared grid, extended until the best is interior.

    `evaluate(lr)` trains every run of `names` at `lr` (on the tuning seeds) and returns each one's mean final
    validation loss; it is called once per LR. While some run's best LR is the grid's smallest (largest), LR/2 (LR·2)
    is added, at most `max_extensions` times. Returns the grid tried, each run's best LR (the lowest mean final loss),
    whether every best is interior (and per run), how many configurations each run was trained at, and the losses.
    """
    names, grid = list(names), sorted(grid)
    losses: dict[str, dict[float, float]] = {name: {} for name in names}
    for extension in range(max_extensions + 1):
        for lr in grid:
            if any(lr not in losses[name] for name in names):
                got = evaluate(lr)
                for name in names:
                    losses[name][lr] = float(got[name])
        best = {name: min(sorted(losses[name]), key=losses[name].__getitem__) for name in names}
        edges = {lr for lr in best.values() if lr in (grid[0], grid[-1])}
        if not edges or extension == max_extensions:
            break
        grid = sorted(set(grid) | {lr / 2 if lr == grid[0] else lr * 2 for lr in edges})
    return {
        "grid": grid,
        "best": best,
        "interior": not edges,
        "interior_by_run": {name: best[name] not in (grid[0], grid[-1]) for name in names},
        "configs_tried": {name: len(losses[name]) for name in names},
        "mean_final_loss": {name: {f"{lr:g}": v for lr, v in sorted(losses[name].items())} for name in names},
    }


# -------------------------------------------------------------------------------------------------- results


def compare(
    base_evals: list[dict],
    run_evals: list[dict],
    budget: int,
    horizons: list[int],
    sunk: float = 0.0,
    at: str = "flops",
) -> dict[str, Any]:
    """One seed's run against the baseline: per horizon h (`"{h}x"`), the FLOPs saving to reach the baseline's best
    loss within h·`budget` steps, or, where the run never reaches it, its bound 1 − F_run(last) / F_baseline (the
    true saving is below it; `reached` says which); the run's and the baseline's loss after h·B steps; the saving
    with the `sunk` FLOPs charged (None where not reached). Then the run's excess loss over the baseline at each
    baseline evaluation after step 0, matched at equal FLOPs (`at="flops"`, key `not_worse_at_equal_flops`) or at the
    same step (`at="step"`, key `not_worse`). A baseline that never improves on its first evaluation is refused."""
    points = horizon_points(base_evals, run_evals, budget, horizons, sunk)
    for p in points:
        if p.baseline_flops <= 0:
            raise KinheritError(
                f"the baseline never improved on its first evaluation within {p.horizon}x the budget: "
                "no saving is defined; train it longer or with another learning rate"
            )
    last = float(run_evals[-1]["flops"])
    if at == "flops":
        curve = [(float(e["flops"]), float(e["val_loss"])) for e in run_evals]
        excess = [
            value_at(curve, float(e["flops"])) - e["val_loss"]
            for e in base_evals
            if e["step"] > 0 and value_at(curve, float(e["flops"])) is not None
        ]
        key = "not_worse_at_equal_flops"
    elif at == "step":
        at_step = {e["step"]: e["val_loss"] for e in run_evals}
        excess = [at_step[e["step"]] - e["val_loss"] for e in base_evals if e["step"] > 0 and e["step"] in at_step]
        key = "not_worse"
    else:
        raise ValueError(f"at: 'flops' or 'step', not {at!r}")
    return {
        "saving": {
            f"{p.horizon}x": p.saving if p.saving is not None else saving(last, p.baseline_flops)[0] for p in points
        },
        "reached": {f"{p.horizon}x": p.saving is not None for p in points},
        "saving_sunk_counted": {
            f"{p.horizon}x": (1 - (p.flops_to_baseline_loss + sunk) / p.baseline_flops)
            if p.flops_to_baseline_loss is not None
            else None
            for p in points
        },
        "loss": {f"{p.horizon}x": p.run_loss for p in points},
        "scratch_loss": {f"{p.horizon}x": p.baseline_loss for p in points},
        "loss_equal_total_flops": {f"{p.horizon}x": p.loss_at_equal_total_flops for p in points},
        "sunk_flops": sunk,
        "evaluations": len(excess),
        key: sum(e <= 0 for e in excess),
        "max_excess": max(excess) if excess else None,
    }


def add_seed(
    values: dict[str, list],
    baseline_evals: list[dict],
    run_evals: list[dict],
    budget: int,
    horizons: list[int],
    sunk: float,
) -> None:
    """Append one seed's horizon figures (`compare`) to `values` (key -> one entry per seed): `sunk_flops`, and per
    horizon `saving@{h}x` (the bound where not reached), `reached@`, `loss@`, `loss_equal_total_flops@`."""
    one = compare(baseline_evals, run_evals, budget, horizons, sunk)
    values.setdefault("sunk_flops", []).append(sunk)
    for h in horizons:
        key = f"{h}x"
        for name in ("saving", "reached", "loss", "loss_equal_total_flops"):
            values.setdefault(f"{name}@{key}", []).append(one[name][key])


# ------------------------------------------------------------------------------------------------- frontier

Curve = list[tuple[float, float]]
"""A size's annealed scratch runs: (FLOPs C, final loss L) of one run per budget, each annealed at its own end."""


def _log(curve: Curve) -> Curve:
    return [(math.log(c), loss) for c, loss in sorted(curve)]


def loss_at(curve: Curve, compute: float) -> float | None:
    """L(C) of one size: linear in log C between its measured budgets; None outside them (never extrapolated)."""
    return value_at(_log(curve), math.log(compute))


def frontier_loss(curves: dict[str, Curve], compute: float) -> tuple[float, str, int] | None:
    """L*(C) = min over sizes s of L_s(C): the lowest loss any size reaches at C, the size that reaches it, and how
    many sizes' measured budgets span C (the min is over those); None where none does."""
    known = [(loss, name) for name, curve in curves.items() if (loss := loss_at(curve, compute)) is not None]
    return (*min(known), len(known)) if known else None


def frontier(curves: dict[str, Curve]) -> list[tuple[float, float, str]]:
    """The envelope L*(C) as (C, L*, size) at every measured budget and every crossing of two sizes' curves: between
    consecutive budgets every curve is linear in log C, so these points draw L* exactly."""
    knots = sorted({math.log(c) for curve in curves.values() for c, _ in curve})
    xs = set(knots)
    for x0, x1 in zip(knots, knots[1:]):
        ends = [
            (a, b)
            for curve in curves.values()
            if (a := value_at(_log(curve), x0)) is not None and (b := value_at(_log(curve), x1)) is not None
        ]
        for i, (a0, a1) in enumerate(ends):
            for b0, b1 in ends[i + 1 :]:
                if (a0 - b0) * (a1 - b1) < 0:  # the two segments cross inside (x0, x1)
                    xs.add(x0 + (x1 - x0) * (a0 - b0) / ((a0 - b0) - (a1 - b1)))
    return [(math.exp(x), *frontier_loss(curves, math.exp(x))[:2]) for x in sorted(xs)]


def compute_to_loss(curve: Curve, loss: float) -> tuple[float, float]:
    """The compute C_s(L) at which one size's annealed curve first reaches `loss`, as an interval (low, high):
    exact inside its measured budgets (interpolated in log C); (0, C_first] where even its smallest budget ends
    below `loss`; [C_last, ∞) where no budget reaches it. Never extrapolated."""
    points = _log(curve)
    if points[0][1] < loss:
        return 0.0, math.exp(points[0][0])
    x = compute_to_reach(points, loss)
    return (math.exp(points[-1][0]), math.inf) if x is None else (math.exp(x), math.exp(x))


def frontier_compute(curves: dict[str, Curve], loss: float) -> tuple[float, float]:
    """The least compute at which the frontier reaches `loss`, min over sizes of C_s(L), as an interval: the min of
    the sizes' lower ends and the min of their upper ends (`compute_to_loss`)."""
    intervals = [compute_to_loss(curve, loss) for curve in curves.values()]
    return min(low for low, _ in intervals), min(high for _, high in intervals)


def saving_interval(compute: float, baseline: tuple[float, float]) -> dict[str, Any]:
    """The saving 1 − C_m / C_s of a run of C_m = `compute` FLOPs where the baseline needs C_s ∈ `baseline`
    (low, high): `low` = 1 − C_m / C_s,low (−∞ when C_s,low = 0), `high` = 1 − C_m / C_s,high (1 when C_s,high =
    ∞); `bound`: None (exact), `upper` (only high is known), `lower` (only low) or `range` (both, apart)."""
    c_low, c_high = baseline
    low = 1 - compute / c_low if c_low > 0 else -math.inf
    high = 1 - compute / c_high
    if c_low == c_high:
        bound = None
    elif c_low == 0:
        bound = "upper"
    elif c_high == math.inf:
        bound = "lower"
    else:
        bound = "range"
    return {"low": low, "high": high, "bound": bound}


def interval_value(interval: dict[str, Any]) -> tuple[float, bool]:
    """A saving interval (`saving_interval`, or a mean of them over seeds) as one value, and whether it is a bound:
    exact; else its known end (`upper`: high, `lower`: low); a `range` at its middle, or at its known end where a mean
    over seeds of several bound kinds left the other end open (low −∞, high 1)."""
    bound = interval["bound"]
    if bound is None:
        return interval["low"], False
    if bound == "range":
        low, high = interval["low"], interval["high"]
        return (high if low == -math.inf else low if high == 1.0 else (low + high) / 2), True
    return interval["high" if bound == "upper" else "low"], True


def against_frontier(compute: float, loss: float, target: Curve, curves: dict[str, Curve]) -> dict[str, Any]:
    """A run that spent C_m = `compute` FLOPs and ended at L_m = `loss`, against the annealed scratch curves: its
    saving vs the target's own curve (1 − C_m / C_target(L_m)), its saving vs the frontier (1 − C_m / C*(L_m), C* the
    least compute at which any size reaches L_m), each an interval where L_m lies outside the measured losses
    (`saving_interval`), and Δ = L_m − L*(C_m) at equal compute (None where no size's budgets span C_m) with how
    many sizes the min is over."""
    equal = frontier_loss(curves, compute)
    return {
        "flops": compute,
        "loss": loss,
        "vs_target": saving_interval(compute, compute_to_loss(target, loss)),
        "vs_frontier": saving_interval(compute, frontier_compute(curves, loss)),
        "delta_vs_frontier": None if equal is None else loss - equal[0],
        "frontier_size": None if equal is None else equal[1],
        "sizes_spanning": 0 if equal is None else equal[2],
    }


# ---------------------------------------------------------------------------------------------------- seeds


def mean_std(values: list[float | None]) -> dict[str, Any]:
    """Mean ± sample std of the values that exist (None or not finite: undefined, e.g. a loss at equal FLOPs where
    the sunk cost exceeds the budget), with how many exist (`reached`) of `n`."""
    known = [v for v in values if v is not None and v == v and abs(v) != float("inf")]
    return {
        "mean": statistics.mean(known) if known else None,
        "std": statistics.stdev(known) if len(known) > 1 else 0.0,
        "reached": len(known),
        "n": len(values),
    }


def summarize_savings(savings: list[float], reached: list[bool]) -> dict[str, Any]:
    """Mean ± std of the savings over every seed. A seed that never reached the target enters as its bound,
    1 − F_run(last evaluation) / F_baseline (its true saving is below it), so with any such seed the mean is an
    upper bound (`bound: true`): an unreached seed is never dropped, and never raises the mean above the truth."""
    if len(savings) != len(reached) or not savings:
        raise ValueError(f"{len(savings)} savings for {len(reached)} reached flags")
    return {
        "mean": statistics.mean(savings),
        "std": statistics.stdev(savings) if len(savings) > 1 else 0.0,
        "reached": sum(reached),
        "n": len(savings),
        "bound": not all(reached),
    }


def format_summary(summary: dict[str, Any], pct: bool = True, digits: int = 3) -> str:
    """One table cell of a `mean_std` or `summarize_savings` summary: `≤ ` before an upper bound, `± std` with more
    than one seed, and how many seeds did not reach the target (counted at their bound) or are undefined."""
    if summary["mean"] is None:
        return "not reached"
    fmt = (lambda v: f"{v:.1%}") if pct else (lambda v: f"{v:.{digits}f}")
    text = ("≤ " if summary.get("bound") else "") + fmt(summary["mean"])
    text += f" ± {fmt(summary['std'])}" if summary["n"] > 1 else ""
    missing = summary["n"] - summary["reached"]
    if not missing:
        return text
    if "bound" in summary:
        return text + f" ({missing} of {summary['n']} not reached, counted at their bound)"
    return text + f" (mean of {summary['reached']}; {missing} of {summary['n']} undefined)"


def format_savings(savings: list[float], reached: list[bool]) -> str:
    """One table cell: mean ± std of per-seed savings, unreached seeds at their bound and the mean marked ≤."""
    return format_summary(summarize_savings(savings, reached))


# --------------------------------------------------------------------------------------------------- params


def param_counts(model: torch.nn.Module) -> dict[str, int]:
    """`non_embedding` and `with_embedding` parameters of a built model (each tensor counted once, so a tied LM head
    is the embedding).

    Non-embedding parameters are every parameter but the token embedding and the LM head (when untied): attention,
    FFN (every expert of a mixture), norms and biases. The norms stay in: they are parameters the optimizer trains
    and FLOPs-free only to first order, and leaving them out (4d²+12d² per llama layer) undercounts a model by
    2d per layer + d; this is the count of Kaplan et al. (2020) minus nothing but the embeddings."""
    seen: dict[int, int] = {}
    for p in model.parameters():
        seen[id(p)] = p.numel()
    embedding_ids = {
        id(p)
        for module in (model.get_input_embeddings(), model.get_output_embeddings())
        if module is not None
        for p in module.parameters()
    }
    total = sum(seen.values())
    return {"non_embedding": total - sum(n for i, n in seen.items() if i in embedding_ids), "with_embedding": total}


def model_param_counts(model: dict[str, Any] | str | Path, vocab: int = 2048, seq_len: int = 128) -> dict[str, int]:
    """`param_counts` of a `model:` section built at `vocab` (a fresh family model), or of the HF model folder given
    as a path; built on the meta device, so nothing is allocated."""
    if isinstance(model, (str, Path)):
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(model)
        with torch.device("meta"):
            return param_counts(AutoModelForCausalLM.from_config(config))
    return param_counts(_meta_model(model, vocab, seq_len))


def _meta_model(model: dict[str, Any], vocab: int, seq_len: int) -> torch.nn.Module:
    """The fresh family model of a `model:` section at `vocab`, on the meta device (nothing allocated)."""
    sizes = ModelConfig.model_validate(model)
    family = FAMILIES.lookup(sizes.family or "llama")
    config = family.build_config(sizes, vocab, sizes.positions(seq_len))
    auto = AutoModelForMaskedLM if family.task == "masked" else AutoModelForCausalLM
    with torch.device("meta"):
        return auto.from_config(config)


def non_embedding_params(hidden: int, layers: int) -> int:
    """Non-embedding parameters of the llama `HxL` (`model_at`), as `param_counts` counts them: per layer attention
    4H² (as many kv heads as heads, no biases), SwiGLU FFN 3·H·4H and two RMSNorms 2H; plus the final norm H."""
    return layers * (4 * hidden**2 + 12 * hidden**2 + 2 * hidden) + hidden


# ---------------------------------------------------------------------------------------------------- speed


class StepTimer(TrainerCallback):
    """Wall time of the optimizer steps after `warmup` steps."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end, self.steps = warmup, 0.0, 0.0, 0

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if state.global_step == self.warmup:
            self.start = time.perf_counter()
        elif state.global_step > self.warmup:
            self.end, self.steps = time.perf_counter(), state.global_step - self.warmup


def tokens_per_s(trainer: Trainer, warmup: int, step_tokens: int) -> float:
    """Train `trainer` (printing nothing) and return its tokens/s over the steps after `warmup`."""
    timer = StepTimer(warmup)
    trainer.add_callback(timer)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return timer.steps * step_tokens / (timer.end - timer.start)


def step_time(out: Path, skip: int, stage: int | None = None) -> float:
    """Median wall time between consecutive logged optimizer steps of the run in `out`, after `skip` steps (of
    `stage` alone, for a staged run; NaN when fewer than two steps are left)."""
    times = [
        e["time_s"]
        for e in read_metrics(out / "metrics.jsonl")
        if "loss" in e and (stage is None or e.get("stage", 0) == stage)
    ]
    gaps = [b - a for a, b in zip(times[skip:], times[skip + 1 :])]
    return statistics.median(gaps) if gaps else float("nan")


def matmul_peak_gflops(n: int = 2048, reps: int = 10) -> float:
    """The measured fp32 matmul rate of this CPU, GFLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


# --------------------------------------------------------------------------------------------------- output


def write_table(
    out: Path, stem: str, text: str, draw: Callable[[Path], None], alt: str | None = None, figure: str | None = None
) -> None:
    """A bench's result: `stem`.md (the table, then its figure) and the figure (`figure`, default `stem`.png) drawn by
    `draw`; the table printed. `alt` is the figure's alt text (default: the stem)."""
    figure = figure or f"{stem}.png"
    with atomic_file(out / f"{stem}.md") as handle:
        handle.write(text + f"\n![{alt or stem}]({figure})\n")
    draw(out / figure)
    print(text)

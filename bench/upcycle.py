"""Dense → mixture of experts: does an upcycled MoE beat one trained from scratch, and the dense model trained on?

    OMP_NUM_THREADS=1 python -m bench.upcycle [--spec SPEC.yaml] [--out /work/runs/upcycle]
        [--lr-grid 1e-3 2e-3 4e-3 --tune-seeds 100] [--seeds 0 1 2] [--router-seeds 0 1]

Protocol (README, "Dense → mixture of experts"):
1. A dense llama teacher is pre-trained once (`teacher_train`); its FLOPs are the sunk cost, stated.
2. Tuning, on seeds never reported: the upcycled MoE, the scratch MoE and the dense teacher trained on
   are each trained for the budget B at every peak LR of the same grid; each keeps its best (bench.protocol's
   `tune_lr`; the grid is extended at an edge only with --max-extensions, default 0).
3. Reporting, on fresh seeds, each for B steps at its tuned LR:
     upcycled   `kinherit grow TEACHER --num-experts E --experts-per-token k` (exact), then pre-trained
     scratch    the same MoE config, freshly initialised by transformers (same active FLOPs per token)
     dense      the teacher trained on (cheaper per token: it runs as many steps as the MoE's FLOPs allow)
   saving = 1 − FLOPs(upcycled to scratch's best loss) / FLOPs(scratch to it), or where a seed never reaches that
   loss its bound (bench.protocol's `compare`; the mean is then an upper bound, marked ≤); loss at scratch's final
   FLOPs for every run (student FLOPs; the teacher's pre-training is stated separately).
4. Router init ablation: upcycled with each `--router` over `--router-seeds`, at the upcycled LR.
Writes upcycle.json, upcycle.md and curves.png to --out; prints the table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from pydantic import Field  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

from bench.protocol import (  # noqa: E402
    budget_line,
    compare,
    final_loss,
    format_summary,
    mean_std,
    model_param_counts,
    summarize_savings,
    tokens_per_step,
    train_run,
    tune_lr,
)
from kinherit.config import StrictModel, read_yaml  # noqa: E402
from kinherit.grow.api import grow_folder  # noqa: E402
from kinherit.grow.options import DEFAULT_ROUTER, ROUTER_INITS  # noqa: E402
from kinherit.hf_folder import TOKENIZER_FILES  # noqa: E402
from kinherit.io import atomic_dir, atomic_file, write_json  # noqa: E402
from kinherit.metrics.flops import flops_per_token  # noqa: E402
from kinherit.metrics.horizons import value_at  # noqa: E402
from kinherit.metrics.plots import save_png  # noqa: E402
from kinherit.metrics.report import sunk_flops  # noqa: E402
from kinherit.metrics.runs import load_run  # noqa: E402

RUNS = ("upcycled", "scratch", "dense")


class UpcycleSpec(StrictModel):
    """Sizes and budgets; `data`, `teacher_model` and the `*_train` sections are ordinary run-config sections."""

    data: dict[str, Any] = Field(
        default_factory=lambda: {
            "sources": ["stdlib"],
            "tokenizer": {"train_vocab_size": 2048},
            "seq_len": 128,
            "val_fraction": 0.02,
        }
    )
    teacher_model: dict[str, Any] = Field(
        default_factory=lambda: {
            "family": "llama",
            "hidden_size": 64,
            "num_layers": 2,
            "num_heads": 2,
            "intermediate_size": 176,
        }
    )
    teacher_train: dict[str, Any] = Field(
        default_factory=lambda: {
            "max_steps": 400,
            "learning_rate": 3e-3,
            "eval_steps": 50,
            "per_device_train_batch_size": 16,
        }
    )
    student_train: dict[str, Any] = Field(
        default_factory=lambda: {
            "max_steps": 200,
            "learning_rate": 2e-3,
            "eval_steps": 50,
            "per_device_train_batch_size": 16,
        }
    )
    upcycle: dict[str, Any] = Field(default_factory=lambda: {"num_experts": 4, "experts_per_token": 2})
    """`kinherit grow` upcycling options (the router init defaults to the library's)."""


def _copy_tokenizer(src: Path, dst: Path) -> None:
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)


def upcycled_init(teacher: Path, options: dict[str, Any], seed: int, out: Path) -> Path:
    if not (out / "growth.json").is_file():
        report = grow_folder(teacher, out, seed=seed, **options)
        assert report.exact_claimed and report.passed, report.table()
        print(f"  upcycled {out}: max |dlogits| {report.max_deviation:.2e}", flush=True)
    return out


def scratch_init(upcycled: Path, teacher: Path, seed: int, out: Path) -> Path:
    """The upcycled model's very config, freshly initialised by transformers (seeded)."""
    if not (out / "config.json").is_file():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(upcycled), dtype="float32")
        with atomic_dir(out) as stage:
            model.save_pretrained(stage)
            _copy_tokenizer(teacher, stage)
    return out


def run_config(spec: UpcycleSpec, out: Path, model: dict[str, Any], train: dict[str, Any]) -> dict[str, Any]:
    """An ordinary `kinherit pretrain` config (the experiment's runs are reused when finished, resumed when
    interrupted)."""
    return {"out": str(out), "data": dict(spec.data), "model": model, "train": train}


def train_from(spec: UpcycleSpec, start: Path, out: Path, seed: int, lr: float, steps: int) -> Path:
    train = {**spec.student_train, "learning_rate": lr, "max_steps": steps, "seed": seed}
    train_run({**run_config(spec, out, {"from": str(start)}, train), "growth_lr_factor": 1.0})  # every run at its LR
    return out


def dense_steps(spec: UpcycleSpec, teacher: Path, upcycled: Path) -> int:
    """Steps of the dense model with the MoE budget's FLOPs (rounded to whole evaluations)."""
    seq = int(spec.data.get("seq_len", 128))
    dense = flops_per_token(AutoModelForCausalLM.from_pretrained(teacher), seq).train
    moe = flops_per_token(AutoModelForCausalLM.from_pretrained(upcycled), seq).train
    budget, every = int(spec.student_train["max_steps"]), int(spec.student_train["eval_steps"])
    return max(every, round(budget * moe / dense / every) * every)


def summary_of(values: list[float | None]) -> dict[str, Any]:
    """`mean_std` of per-seed figures, the figures kept (`values`)."""
    return {**mean_std(values), "values": values}


def fmt(s: dict[str, Any], pct: bool = False) -> str:
    """A table cell: `format_summary`, losses to 4 decimals."""
    return format_summary(s, pct, digits=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", help="YAML UpcycleSpec")
    parser.add_argument("--out", default="/work/runs/upcycle")
    parser.add_argument(
        "--lr-grid",
        type=float,
        nargs="+",
        help="tune each run's peak LR over this grid on --tune-seeds (default: student_train's LR for all)",
    )
    parser.add_argument(
        "--max-extensions",
        type=int,
        default=0,
        help="extend the LR grid ×2 at an edge up to this many times (default 0: the grid as given)",
    )
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--router-seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    if set(args.tune_seeds) & set(args.seeds):
        parser.error("tuning seeds must not be reported: --tune-seeds and --seeds overlap")
    spec = UpcycleSpec.model_validate(read_yaml(Path(args.spec).read_text()) if args.spec else {})
    out = Path(args.out)
    budget = int(spec.student_train["max_steps"])

    print("[teacher] pre-train the dense model", flush=True)
    teacher = train_run(run_config(spec, out / "teacher", spec.teacher_model, {**spec.teacher_train, "seed": 0}))
    teacher_flops = float(load_run(teacher.parent).train[-1]["flops"])

    def starts(seed: int, router: str | None = None) -> dict[str, Path]:
        options = {**spec.upcycle, **({"router": router} if router else {})}
        name = f"upcycled-init-{router or 'default'}"
        up = upcycled_init(teacher, options, seed, out / f"seed{seed}" / name)
        return {
            "upcycled": up,
            "scratch": scratch_init(up, teacher, seed, out / f"seed{seed}" / "scratch-init"),
            "dense": teacher,
        }

    steps_of: dict[str, int] = {}

    def run(name: str, seed: int, lr: float, folder: Path, start: Path) -> Path:
        if name not in steps_of:
            probe = starts(seed)
            steps_of.update(upcycled=budget, scratch=budget, dense=dense_steps(spec, teacher, probe["upcycled"]))
        print(f"[seed {seed}] {name} lr={lr:g} steps={steps_of[name]}", flush=True)
        return train_from(spec, start, folder, seed, lr, steps_of[name])

    # tuning (the protocol's tuner; the grid is extended at an edge only with --max-extensions)
    def evaluate(lr: float) -> dict[str, float]:
        return {
            name: statistics.mean(
                final_loss(run(name, seed, lr, out / f"tune/seed{seed}/lr{lr:g}/{name}", starts(seed)[name]))
                for seed in args.tune_seeds
            )
            for name in RUNS
        }

    tuning: dict[str, dict[str, float]] = {name: {} for name in RUNS}
    if args.lr_grid:
        tuned = tune_lr(RUNS, args.lr_grid, evaluate, args.max_extensions)
        tuning, best, interior = tuned["mean_final_loss"], tuned["best"], tuned["interior_by_run"]
    else:
        best = {name: float(spec.student_train["learning_rate"]) for name in RUNS}
        interior = {name: False for name in RUNS}
    print(f"tuned LRs {best} (interior {interior})", flush=True)

    # reporting
    per_seed: dict[str, dict[str, list]] = {
        name: {"final": [], "at_scratch_flops": [], "saving": [], "reached": [], "sunk": [], "flops_vs_scratch": []}
        for name in RUNS
    }
    curves: dict[str, list] = {name: [] for name in RUNS}
    for seed in args.seeds:
        folders = {name: run(name, seed, best[name], out / f"seed{seed}" / name, starts(seed)[name]) for name in RUNS}
        runs = {name: load_run(folder) for name, folder in folders.items()}
        scratch_flops = float(runs["scratch"].evals[-1]["flops"])
        for name, r in runs.items():
            per_seed[name]["final"].append(float(r.evals[-1]["val_loss"]))
            last = float(r.evals[-1]["flops"])  # the dense run's steps are rounded to whole evaluations:
            # within 2% counts as equal
            at = min(scratch_flops, last) if last >= 0.98 * scratch_flops else scratch_flops
            per_seed[name]["at_scratch_flops"].append(value_at(r.curve("flops"), at))
            per_seed[name]["flops_vs_scratch"].append(last / scratch_flops)
            if name == "dense":  # other steps than the MoE's: no evaluation at step B to compare at
                saved, reached = _dense_saving(runs["scratch"], r)
            else:
                one = compare(runs["scratch"].evals, r.evals, budget, [1])
                saved, reached = one["saving"]["1x"], one["reached"]["1x"]
            per_seed[name]["saving"].append(saved)
            per_seed[name]["reached"].append(reached)
            per_seed[name]["sunk"].append(sunk_flops(r))
            curves[name].append(r.curve("flops"))

    def write(routers: dict[str, Any]) -> str:
        summary = {
            name: {
                key: {**summarize_savings(vals, values["reached"]), "values": vals}
                if key == "saving"
                else summary_of(vals)
                for key, vals in values.items()
                if key != "reached"
            }
            for name, values in per_seed.items()
        }
        result = {
            "spec": spec.model_dump(),
            "teacher_flops": teacher_flops,
            "tune_seeds": args.tune_seeds,
            "seeds": args.seeds,
            "lr_grid": args.lr_grid,
            "tuning": tuning,
            "best_lr": best,
            "interior": interior,
            "dense_steps": steps_of["dense"],
            "summary": summary,
            "routers": routers,
            "router_seeds": args.router_seeds,
            "tokens_per_step": tokens_per_step(spec.student_train, spec.data),
            "params": {
                "moe": model_param_counts(out / f"seed{args.seeds[0]}" / "scratch" / "model"),
                "dense": model_param_counts(teacher),
            },
        }
        write_json(out / "upcycle.json", result)
        plot(curves, out / "curves.png")
        text = markdown(result)
        with atomic_file(out / "upcycle.md") as handle:
            handle.write(text + "\n![validation loss against training FLOPs](curves.png)\n")
        return text

    write({})
    # router init ablation (upcycled, the upcycled run's LR)
    routers: dict[str, dict[str, Any]] = {}
    for router in ROUTER_INITS:
        losses = []
        for seed in args.router_seeds:
            if router == DEFAULT_ROUTER and seed in args.seeds:  # the reported upcycled run is this one
                losses.append(final_loss(out / f"seed{seed}" / "upcycled"))
                continue
            start = starts(seed, router)["upcycled"]
            losses.append(
                final_loss(
                    train_from(spec, start, out / f"seed{seed}" / f"router-{router}", seed, best["upcycled"], budget)
                )
            )
        routers[router] = summary_of(losses)
    text = write(routers)
    print("\n" + text)
    print(f"written {out / 'upcycle.json'}, {out / 'upcycle.md'}, {out / 'curves.png'}")


def _dense_saving(scratch, dense) -> tuple[float, bool]:  # noqa: ANN001
    """(FLOPs saving of the dense run to scratch-MoE's best loss, reached): where never reached, the bound
    1 − F_dense(last evaluation) / F_scratch(target), as `compare` gives it."""
    from kinherit.metrics.savings import compute_to_reach, saving

    target = min(float(e["val_loss"]) for e in scratch.evals)
    base = compute_to_reach(scratch.curve("flops"), target)
    needed = compute_to_reach(dense.curve("flops"), target)
    return saving(needed if needed is not None else float(dense.evals[-1]["flops"]), base)[0], needed is not None


def plot(curves: dict[str, list], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for (name, runs), color in zip(curves.items(), ("C0", "C1", "C2")):
        for i, curve in enumerate(runs):
            xs, ys = zip(*curve)
            ax.plot(xs, ys, color=color, alpha=0.7, label=name if i == 0 else None)
    ax.set_xlabel("student training FLOPs (active parameters)")
    ax.set_ylabel("validation loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    save_png(fig, path)


def markdown(r: dict[str, Any]) -> str:
    up = r["spec"]["upcycle"]
    lines = [
        f"dense teacher {r['spec']['teacher_model']} pre-trained {r['spec']['teacher_train']['max_steps']} steps "
        f"({r['teacher_flops']:.3g} FLOPs, sunk); MoE: {up}; "
        f"budget {r['spec']['student_train']['max_steps']} MoE steps "
        f"(dense trained on: {r['dense_steps']} steps, the same FLOPs)",
        (
            f"LR tuned on seeds {r['tune_seeds']} over {sorted(float(lr) for lr in next(iter(r['tuning'].values())))} "
            f"({len(next(iter(r['tuning'].values())))} configurations each): "
            + ", ".join(f"{n} {lr:g}" + ("" if r["interior"][n] else " (edge)") for n, lr in r["best_lr"].items())
        )
        if r["lr_grid"]
        else f"peak LR {r['best_lr']['upcycled']:g} for every run (not tuned)",
        f"reported seeds {r['seeds']}, mean ± std",
        "",
        *(
            [
                budget_line(
                    r["spec"]["student_train"]["max_steps"], r["tokens_per_step"], r["params"]["moe"], "MoE budget"
                )
                + " (every expert counted)",
                budget_line(r["dense_steps"], r["tokens_per_step"], r["params"]["dense"], "dense trained on"),
                "",
            ]
            if "params" in r
            else []
        ),
        "| run | FLOPs saved to scratch-MoE's best loss | val loss at scratch's final FLOPs | final val loss "
        "| its FLOPs / scratch's |",
        "|---|---|---|---|---|",
    ]
    for name, s in r["summary"].items():
        lines.append(
            f"| {name} | {fmt(s['saving'], True)} | {fmt(s['at_scratch_flops'])} | {fmt(s['final'])} | "
            f"{s['flops_vs_scratch']['mean']:.3f} |"
        )
    if r["routers"]:
        lines += [
            "",
            f"router init (upcycled, seeds {r['router_seeds']}): final val loss "
            + ", ".join(f"{name} {fmt(s)}" for name, s in r["routers"].items()),
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

"""`kinherit recycle-experiment`: fine-tune NEW_BASE four ways on the same data and budget.

    scratch    B with a fresh head (or a fresh LoRA adapter)
    init       from B + λ·(A_tuned − A) (or A's adapter on B)             `kinherit recycle`
    distill    B, with A_tuned as teacher: (1 − α)·CE + α·τ²·KL          `finetune teacher:`
    combined   both

Reported per variant: validation accuracy at step 0, the first evaluated step whose accuracy reaches
the scratch run's final accuracy (the target), the training FLOPs spent by then (the teacher's forward
passes included, so distillation's extra cost shows), the total FLOPs and the final accuracy; as
report.json, report.md and accuracy.png (accuracy vs step) in `out`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinherit.config import merge_trees, validate_as
from kinherit.errors import KinheritError
from kinherit.io import atomic_file, write_json
from kinherit.recycle.adapters import recycle_adapter
from kinherit.recycle.config import ExperimentConfig, FinetuneConfig
from kinherit.recycle.delta import recycle_full
from kinherit.recycle.finetune import finetune


@dataclass(frozen=True)
class VariantResult:
    name: str
    accuracy: dict[int, float]  # eval step -> validation accuracy
    flops: dict[int, float]  # eval step -> cumulative training FLOPs (teacher forward passes included)
    steps_to_target: int | None  # None: never reached within the budget

    @property
    def flops_to_target(self) -> float | None:
        """FLOPs spent up to the evaluation that first reached the target."""
        return None if self.steps_to_target is None else self.flops[self.steps_to_target]

    @property
    def step0(self) -> float:
        return self.accuracy[0]

    @property
    def final(self) -> float:
        return self.accuracy[max(self.accuracy)]

    @property
    def total_flops(self) -> float:
        return self.flops[max(self.flops)]


@dataclass(frozen=True)
class ExperimentReport:
    target: float
    variants: list[VariantResult]

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_accuracy": self.target,
            "variants": {
                v.name: {
                    "step0_accuracy": v.step0,
                    "steps_to_target": v.steps_to_target,
                    "flops_to_target": v.flops_to_target,
                    "total_flops": v.total_flops,
                    "final_accuracy": v.final,
                    "accuracy": {str(k): a for k, a in v.accuracy.items()},
                    "flops": {str(k): f for k, f in v.flops.items()},
                }
                for v in self.variants
            },
        }

    def markdown(self) -> str:
        rows = [
            f"| {v.name} | {v.step0:.3f} | {'not reached' if v.steps_to_target is None else v.steps_to_target} | "
            f"{'not reached' if v.flops_to_target is None else f'{v.flops_to_target:.3g}'} | {v.total_flops:.3g} | "
            f"{v.final:.3f} |"
            for v in self.variants
        ]
        return "\n".join(
            [
                f"Target: the from-scratch run's final validation accuracy, {self.target:.3f}. "
                "FLOPs include the teacher's forward passes (distill, combined).",
                "",
                "| variant | step-0 accuracy | steps to target | FLOPs to target | total FLOPs | final accuracy |",
                "|---|---|---|---|---|---|",
                *rows,
            ]
        )


def steps_to_reach(accuracy: dict[int, float], target: float) -> int | None:
    return next((step for step, acc in sorted(accuracy.items()) if acc >= target - 1e-12), None)


def _variant_config(config: ExperimentConfig, name: str, old_tuned: Path, init: Path | None) -> FinetuneConfig:
    shared = config.finetune
    recycled = name in ("init", "combined")
    model: dict[str, Any] = dict(shared.get("model", {}))
    if config.adapter:
        model["base"] = config.new_base
        if recycled:
            model = {"base": config.new_base, "adapter": str(init)}
    else:
        model["base"] = str(init) if recycled else config.new_base
    raw = {**shared, "out": str(Path(config.out) / name), "model": model}
    if name in ("distill", "combined"):
        raw["teacher"] = merge_trees(shared.get("teacher", {}), {"path": str(old_tuned)})
    else:
        raw.pop("teacher", None)
    return validate_as(FinetuneConfig, raw)


def _tune_old(config: ExperimentConfig) -> Path:
    """A_tuned made here: OLD_BASE fine-tuned with the shared settings (no teacher)."""
    raw = {k: v for k, v in config.finetune.items() if k != "teacher"}
    raw = {
        **raw,
        "out": str(Path(config.out) / "old-tuned"),
        "model": {**raw.get("model", {}), "base": config.old_base},
    }
    return finetune(validate_as(FinetuneConfig, raw)).model_dir


def run(config: ExperimentConfig) -> ExperimentReport:
    """Run the configured variants (scratch first) and write the report files."""
    if config.adapter and "lora" not in config.finetune.get("model", {}):
        raise KinheritError("adapter: true needs finetune.model.lora (the LoRA settings every variant trains)")
    out = Path(config.out)
    old_tuned = Path(config.old_tuned) if config.old_tuned else _tune_old(config)
    init = None
    if {"init", "combined"} & set(config.variants):
        recycle = recycle_adapter if config.adapter else recycle_full
        init = out / "recycled"
        report = recycle(config.old_base, old_tuned, config.new_base, init, scale=config.scale, growth=config.growth)
        print("\n".join(report.lines()), flush=True)
    names = ["scratch", *[v for v in config.variants if v != "scratch"]]
    runs = {name: finetune(_variant_config(config, name, old_tuned, init)) for name in names}
    scratch = runs["scratch"].accuracy
    target = scratch[max(scratch)]
    result = ExperimentReport(
        target, [VariantResult(n, r.accuracy, r.flops, steps_to_reach(r.accuracy, target)) for n, r in runs.items()]
    )
    write_json(out / "report.json", result.to_dict())
    with atomic_file(out / "report.md") as handle:
        handle.write(result.markdown() + "\n")
    plot(result, out / "accuracy.png")
    return result


def plot(report: ExperimentReport, path: Path) -> None:
    """Validation accuracy vs step, one line per variant, the target dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for variant in report.variants:
        steps = sorted(variant.accuracy)
        ax.plot(steps, [variant.accuracy[s] for s in steps], marker="o", markersize=3, label=variant.name)
    ax.axhline(report.target, color="gray", linestyle="--", linewidth=1, label=f"target {report.target:.3f}")
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Recyclable tuning on the upgraded base")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_file(path, mode="wb") as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)

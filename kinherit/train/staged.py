"""Staged training: one `pretrain` run that grows its model at the steps of `config.growth`.

This module holds the run's side of it: the stages with their steps resolved (`Stages`), the segment each stage
trains (`segment_of`), the stage's end (`StopAt`), and `grow_checkpoint`, which applies the growth — one transform
of the training state, `kinherit.train.state_growth.grow_state` — to the checkpoint at the growth step b, on the
training device, in place of that checkpoint (one rename). The loop in `kinherit.train.pretrain` owns the trainers:
it ends a stage at b, releases its trainer, grows, and resumes the next stage from the grown checkpoint exactly as
from any checkpoint (same data stream, no batch seen twice).

The stage each checkpoint belongs to is in its `stage.json`; the record of growth k (`growth/stage-k.json` in the
run folder, and `growth.json` in the final model for `kinherit divergence`) holds the plan, the verification,
the cumulative student FLOPs at b and the LR scales, so a resumed run knows its segment (`segment_of`). A run
killed before, during or after a growth resumes exactly: a checkpoint at b that is still small is grown first.
The growth steps are resolved once, when the run starts, and recorded in `config.resolved.yaml`; a resume keeps
them (`keep_recorded_steps`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, default_data_collator
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from kinherit.arch.catalog import FAMILIES
from kinherit.config import GrowthStage, RunConfig, growth_steps, read_recorded_config, stage_step
from kinherit.errors import KinheritError
from kinherit.grow.options import GrowthOptions
from kinherit.grow.plan import make_plan
from kinherit.hf_folder import load_lm, read_config
from kinherit.io import read_json, write_json
from kinherit.metrics.flops import flops_per_token
from kinherit.train.resume_check import RESOLVED
from kinherit.train.state_growth import TrainingState, grow_state, named_moments, write_grown_checkpoint
from kinherit.train.trainer import STAGE_STATE, Segment

GROWTH_DIR = "growth"


@dataclass(frozen=True)
class Stages:
    """The run's growth stages with their steps resolved."""

    stages: tuple[GrowthStage, ...]
    steps: tuple[int, ...]
    max_steps: int

    @classmethod
    def of(cls, config: RunConfig) -> Stages:
        max_steps = config.train_args["max_steps"]
        return cls(tuple(config.growth), tuple(growth_steps(config.growth, max_steps)), max_steps)

    def next_step(self, stage: int) -> int | None:
        """The step at which stage `stage` ends (grows into stage + 1), None for the last stage."""
        return self.steps[stage] if stage < len(self.steps) else None

    def rewarm(self, stage: int) -> Callable[[int], float] | None:
        """m(t) = min(1, (t − b + 1)/w) after the latest re-warming growth at b ≤ t (1 before any): a function of t."""
        starts = [
            (b, stage_step(s.rewarm_steps, self.max_steps))
            for s, b in zip(self.stages[:stage], self.steps)
            if s.lr_policy == "rewarm"
        ]
        return _Rewarm(tuple(starts)) if starts else None


@dataclass(frozen=True)
class _Rewarm:
    starts: tuple[tuple[int, int], ...]

    def __call__(self, t: int) -> float:
        begun = [(b, w) for b, w in self.starts if b <= t]
        if not begun:
            return 1.0
        b, w = begun[-1]
        return min(1.0, (t - b + 1) / max(w, 1))


def options(stage: GrowthStage) -> GrowthOptions:
    """The `kinherit grow` options of a stage."""
    return GrowthOptions(**stage.model_dump(include=set(GrowthOptions.model_fields)))


def check_stages(config: RunConfig) -> None:
    """Every stage can grow the shape before it (the checks of `kinherit grow`), before any data is read."""
    if not config.growth:
        return
    if config.model.from_ is not None:
        hf_config = read_config(config.model.from_, "model.from")
    else:
        family = FAMILIES.lookup(config.model.family)
        vocab = config.data.tokenizer.train_vocab_size or 256  # the shapes do not depend on the vocabulary
        hf_config = family.build_config(
            config.model, vocab, config.model.max_position_embeddings or config.data.seq_len
        )
    for i, stage in enumerate(config.growth):
        try:
            plan = make_plan(hf_config, options(stage))
        except (KinheritError, ValueError) as err:
            raise KinheritError(f"growth[{i}] cannot grow the model: {str(err).splitlines()[0]}") from None
        hf_config = CONFIG_MAPPING[plan.output_config["model_type"]].from_dict(plan.output_config)


def keep_recorded_steps(config: RunConfig, out: Path) -> RunConfig:
    """The config of a resumed run with the growth steps its run recorded when it started: a stage whose `at_step`
    or `rewarm_steps` is relative (a fraction, `auto`) keeps the recorded step count whatever train.max_steps is now
    (a changed int is refused by the resume check). A train.max_steps at or below a recorded growth step is refused."""
    recorded = (read_recorded_config(out / RESOLVED).get("growth") or []) if (out / RESOLVED).is_file() else []
    if len(recorded) != len(config.growth):
        return config  # the resume check names the difference
    growth = [
        stage.model_copy(
            update={
                key: old[key]
                for key in ("at_step", "rewarm_steps")
                if not isinstance(getattr(stage, key), int) and isinstance(old.get(key), int)
            }
        )
        for stage, old in zip(config.growth, recorded)
    ]
    max_steps = config.train_args["max_steps"]
    for i, stage in enumerate(growth):
        if isinstance(stage.at_step, int) and stage.at_step >= max_steps:
            raise KinheritError(
                f"--resume: train.max_steps={max_steps} would drop growth[{i}], which this run recorded "
                f"at step {stage.at_step}; resume with train.max_steps > {stage.at_step} (the growth steps "
                "are kept from the run's start), or remove the stage and start a new run"
            )
    return config.model_copy(update={"growth": growth})


def stage_of(checkpoint: str | Path | None) -> int:
    """The stage a checkpoint belongs to (0 without a record: a plain run's, or the first stage's)."""
    if checkpoint is None or not Path(checkpoint, STAGE_STATE).is_file():
        return 0
    return int(read_json(Path(checkpoint, STAGE_STATE))["stage"])


def record_path(out: Path, stage: int) -> Path:
    return out / GROWTH_DIR / f"stage-{stage}.json"


def segment_of(out: Path, stages: Stages, stage: int) -> Segment:
    """Stage `stage`'s segment: where it starts, the FLOPs before it, its LR scales and re-warm."""
    if stage == 0:
        return Segment(lr_multiplier=stages.rewarm(0))
    record = read_json(record_path(out, stage))
    return Segment(
        stage=stage,
        start_step=record["at_step"],
        start_flops=record["flops_at_step"],
        lr_scales=record["lr_scales"],
        lr_multiplier=stages.rewarm(stage),
    )


class StopAt(TrainerCallback):
    """End the segment at `step`, with a checkpoint there (the growth's input)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if state.global_step >= self.step:
            control.should_save = True
            control.should_training_stop = True


def grow_checkpoint(
    checkpoint: Path,
    out: Path,
    stages: Stages,
    stage: int,
    held: dict[str, torch.Tensor],
    tokenizer: Any,
    tokens_per_step: int,
    seq_len: int,
    device: torch.device | str,
) -> dict[str, Any]:
    """Replace the stage-`stage` checkpoint at its end step by the grown stage-(`stage`+1) one, the growth computed on
    `device` (main process only); returns the growth's record (also written to `growth/stage-k.json`)."""
    spec, step = stages.stages[stage], stages.steps[stage]
    segment = segment_of(out, stages, stage)
    small = load_lm(checkpoint, "checkpoint").to(device)
    flops = segment.student_flops(step, tokens_per_step, flops_per_token(small, seq_len).train)
    moments = named_moments(checkpoint, device) if spec.optimizer_state == "map" else {}
    grown, record = grow_state(
        TrainingState(small, moments, step, flops, dict(segment.lr_scales)),
        options(spec),
        held,
        optimizer_state=spec.optimizer_state,
        lr_scaling=spec.lr_scaling,
        tokenizer=tokenizer,
        what=f"growth[{stage}]",
    )
    record = {"stage": stage + 1, **record, "lr_policy": spec.lr_policy}
    record_path(out, stage + 1).parent.mkdir(parents=True, exist_ok=True)
    write_json(record_path(out, stage + 1), record)  # first: a checkpoint of stage k + 1 always has its record
    write_grown_checkpoint(grown, checkpoint, stage + 1)
    return record


def describe_growth(record: dict[str, Any]) -> str:
    """One console line for a growth: `step 160: grew 1 → 2 layers, held-loss change +0.0e+00`."""
    plan = record["plan"]
    old, new = plan["source_shape"], plan["target_shape"]
    names = {"layers": "layers", "hidden": "hidden", "ffn": "ffn", "heads": "heads", "kv_heads": "kv heads"}
    changes = [f"{old[key]} → {new[key]} {name}" for key, name in names.items() if old[key] != new[key]]
    if plan.get("upcycle"):
        changes.append(f"dense → {plan['upcycle']['num_experts']} experts")
    return (
        f"step {record['at_step']}: grew {', '.join(changes)} ({record['params_before']:,} → "
        f"{record['params_after']:,} parameters), held-loss change {record['loss_after'] - record['loss_before']:+.1e}"
    )


def held_batch(val: Any, size: int = 4) -> dict[str, torch.Tensor]:
    """The first `size` validation blocks: the batch every growth's loss is verified on."""
    return default_data_collator([val[i] for i in range(min(size, len(val)))])


def final_growth_record(out: Path, stage: int, model_dir: Path) -> None:
    """The last growth's record as the final model's `growth.json` (what `kinherit divergence` reads), with the step
    it grew at: the model has trained since (`grown_learning_rate` tells it from a folder `kinherit grow` wrote)."""
    if stage == 0:
        return
    record = read_json(record_path(out, stage))
    write_json(
        model_dir / "growth.json",
        {
            "source": str((out / "checkpoints").resolve()),
            "at_step": record["at_step"],
            "options": record["options"],
            "plan": record["plan"],
            "report": record["report"],
        },
    )


def grown_learning_rate(config: RunConfig) -> float | None:
    """train.learning_rate × growth_lr_factor for a run from a folder `kinherit grow` wrote (`model.from` holds its
    growth.json; a staged run's final model records the step it grew at, and has trained since); None for any other
    run (a staged one included) and with growth_lr_factor 1: those train at train.learning_rate."""
    start = config.model.from_
    grown = Path(start, "growth.json") if start is not None else None
    if config.growth_lr_factor == 1.0 or grown is None or not grown.is_file() or "at_step" in read_json(grown):
        return None
    return config.train_args["learning_rate"] * config.growth_lr_factor

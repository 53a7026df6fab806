"""Staged training: one `pretrain` run that grows its model at the steps of `config.growth`.

A growth is a transformation of the checkpoint at its step b (`grow_checkpoint`): the small model's
`checkpoint-b` is replaced, in one rename, by the grown model's, holding

- the grown weights (`kinherit.grow.grow`, verified: logits, and the loss on a held validation batch);
- AdamW's state through the growth (`optimizer_state: map`, `kinherit.train.optimizer_growth`) or none (`reset`);
- the schedule at step b (with the stage's LR scales and re-warm), Trainer's state, RNG states and data position
  copied, so training resumes from it exactly as from any checkpoint: same data stream, no batch seen twice.

The stage each checkpoint belongs to is in its `stage.json`; the record of growth k (`growth/stage-k.json` in the
run folder, and `growth.json` in the final model for `kinherit divergence`) holds the plan, the verification,
the cumulative student FLOPs at b and the LR scales, so a resumed run knows its segment (`segment_of`). A run
killed before, during or after a growth resumes exactly: a checkpoint at b that is still small is grown first.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, TrainerCallback, default_data_collator
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from kinherit.arch.catalog import FAMILIES
from kinherit.config import GrowthStage, RunConfig, growth_steps, stage_step
from kinherit.errors import KinheritError
from kinherit.grow.api import grow
from kinherit.grow.options import GrowthOptions
from kinherit.grow.plan import make_plan
from kinherit.hf_folder import load_lm, read_config
from kinherit.io import read_json, replace_dir, write_json
from kinherit.train.optimizer_growth import lr_scales, map_adam_state
from kinherit.train.trainer import STAGE_STATE, STAGING, KinheritTrainer, Segment

GROWTH_DIR = "growth"
LOSS_TOLERANCE = 1e-4
"""|loss after − loss before| on the held batch allowed for an operator that claims exactness (fp32)."""


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
        starts = [(b, stage_step(s.rewarm_steps, self.max_steps)) for s, b in zip(self.stages[:stage], self.steps)
                  if s.lr_policy == "rewarm"]
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
        hf_config = family.build_config(config.model, vocab, config.model.max_position_embeddings or config.data.seq_len)
    for i, stage in enumerate(config.growth):
        try:
            plan = make_plan(hf_config, options(stage))
        except (KinheritError, ValueError) as err:
            raise KinheritError(f"growth[{i}] cannot grow the model: {str(err).splitlines()[0]}") from None
        hf_config = CONFIG_MAPPING[plan.output_config["model_type"]].from_dict(plan.output_config)


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
    return Segment(stage=stage, start_step=record["at_step"], start_flops=record["flops_at_step"],
                   lr_scales=record["lr_scales"], lr_multiplier=stages.rewarm(stage))


class StopAt(TrainerCallback):
    """End the segment at `step`, with a checkpoint there (the growth's input)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if state.global_step >= self.step:
            control.should_save = True
            control.should_training_stop = True


def _held_loss(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> float:
    model.eval()
    with torch.no_grad():
        loss = model(**batch).loss
    return float(loss)


def _param_order(trainer: KinheritTrainer) -> list[str]:
    """Parameter names in the order the trainer's optimizer holds them (its state-dict indices)."""
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    trainer.create_optimizer()
    order = [names[id(p)] for group in trainer.optimizer.param_groups for p in group["params"]]
    trainer.optimizer = None
    return order


def grow_checkpoint(checkpoint: Path, out: Path, stages: Stages, stage: int, make_trainer: Callable[..., KinheritTrainer],
                    held: dict[str, torch.Tensor], tokenizer: Any) -> dict[str, Any]:
    """Replace the stage-`stage` checkpoint at its end step by the grown stage-(`stage`+1) one (main process only);
    returns the growth's record (also written to `growth/stage-k.json`). See the module docstring."""
    spec, step = stages.stages[stage], stages.steps[stage]
    small = load_lm(checkpoint, "checkpoint")
    segment = segment_of(out, stages, stage)
    probe = make_trainer(small, segment)
    flops = segment.start_flops + (step - segment.start_step) * probe.tokens_per_step * probe.student_flops.train
    order = _param_order(probe)
    growth = grow(small, options(spec), tokenizer=tokenizer)
    if not growth.report.passed:
        raise KinheritError(f"growth[{stage}] at step {step} is not exact (max |Δlogits| "
                            f"{growth.report.max_deviation:.2e}); nothing was changed")
    grown = growth.model.float()
    before, after = _held_loss(small, held), _held_loss(grown, held)
    if growth.plan.exact_claimed and abs(after - before) > LOSS_TOLERANCE:
        raise KinheritError(f"growth[{stage}] at step {step} changed the held-out loss by {after - before:+.2e} "
                            f"(> {LOSS_TOLERANCE:.0e}); nothing was changed")
    source_params = {n: p.detach() for n, p in small.named_parameters()}
    grown_names = {n for n, _ in grown.named_parameters()}
    scales = (lr_scales(growth.plan, source_params, grown_names, segment.lr_scales) if spec.lr_scaling == "growth" else {})
    saved = torch.load(Path(checkpoint, "optimizer.pt"), weights_only=True, map_location="cpu")
    moments = {}
    if spec.optimizer_state == "map":
        source_state = {order[i]: state for i, state in saved["state"].items()}
        moments = map_adam_state(growth.plan, source_state, source_params, grown_names)
    record = {"stage": stage + 1, "at_step": step, "flops_at_step": flops, "options": options(spec).model_dump(exclude_defaults=True),
              "optimizer_state": spec.optimizer_state, "lr_policy": spec.lr_policy, "lr_scaling": spec.lr_scaling,
              "loss_before": before, "loss_after": after, "params_before": sum(p.numel() for p in small.parameters()),
              "params_after": sum(p.numel() for p in grown.parameters()), "lr_scales": scales,
              "plan": growth.plan.to_dict(), "report": growth.report.to_dict()}
    staging = checkpoint.parent / STAGING / checkpoint.name
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    grown.save_pretrained(staging)
    trainer = make_trainer(grown, Segment(stage=stage + 1, start_step=step, start_flops=flops, lr_scales=scales,
                                          lr_multiplier=stages.rewarm(stage + 1)))
    _write_optimizer(trainer, moments, step, staging)
    for item in checkpoint.iterdir():
        if item.name.startswith(("trainer_state", "rng_state", "objective", "training_args")):
            shutil.copy2(item, staging / item.name)
    write_json(staging / STAGE_STATE, {"stage": stage + 1})
    record_path(out, stage + 1).parent.mkdir(parents=True, exist_ok=True)
    write_json(record_path(out, stage + 1), record)
    replace_dir(staging, checkpoint)
    return record


def _write_optimizer(trainer: KinheritTrainer, moments: dict[str, dict[str, torch.Tensor]], step: int, folder: Path) -> None:
    """optimizer.pt and scheduler.pt of the grown model at `step`: the mapped moments (none: fresh) in the
    trainer's own parameter order, and the schedule (LR scales and re-warm included) positioned at `step`."""
    trainer.create_optimizer_and_scheduler(num_training_steps=trainer.args.max_steps)
    optimizer, scheduler = trainer.optimizer, trainer.lr_scheduler
    for name, param in trainer.model.named_parameters():
        if name in moments:
            optimizer.state[param] = {k: v.clone() for k, v in moments[name].items()}
    scheduler.last_epoch = step
    for group, fn in zip(optimizer.param_groups, scheduler.lr_lambdas):
        group["lr"] = group["initial_lr"] * fn(step)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    torch.save(scheduler.state_dict(), folder / "scheduler.pt")
    trainer.optimizer = trainer.lr_scheduler = None


def held_batch(val: Any, size: int = 4) -> dict[str, torch.Tensor]:
    """The first `size` validation blocks: the batch every growth's loss is verified on."""
    return default_data_collator([val[i] for i in range(min(size, len(val)))])


def final_growth_record(out: Path, stage: int, model_dir: Path) -> None:
    """The last growth's record as the final model's `growth.json` (what `kinherit divergence` reads), with the step
    it grew at: the model has trained since (`grown_learning_rate` tells it from a folder `kinherit grow` wrote)."""
    if stage == 0:
        return
    record = read_json(record_path(out, stage))
    write_json(model_dir / "growth.json", {"source": str((out / "checkpoints").resolve()), "at_step": record["at_step"],
                                          "options": record["options"], "plan": record["plan"], "report": record["report"]})


def grown_learning_rate(config: RunConfig) -> float | None:
    """train.learning_rate × growth_lr_factor for a run from a folder `kinherit grow` wrote (`model.from` holds its
    growth.json; a staged run's final model records the step it grew at, and has trained since); None for any other
    run (a staged one included) and with growth_lr_factor 1: those train at train.learning_rate."""
    start = config.model.from_
    grown = Path(start, "growth.json") if start is not None else None
    if config.growth_lr_factor == 1.0 or grown is None or not grown.is_file() or "at_step" in read_json(grown):
        return None
    return config.train_args["learning_rate"] * config.growth_lr_factor

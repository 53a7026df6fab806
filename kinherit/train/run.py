"""What every training command shares around `KinheritTrainer`: the training arguments, the run folder's
resume rule, the metrics log and progress bar, and the final evaluation.

Run folder:
    config.resolved.yaml   the full config (defaults filled in), loadable with `--config`
    metrics.jsonl          training and evaluation events (`kinherit.metrics.log`)
    checkpoints/           Trainer `checkpoint-N/` folders, written atomically (resume with `--resume`)
"""

from __future__ import annotations

from collections.abc import Sequence
from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from kinherit.errors import KinheritError
from kinherit.metrics.log import METRICS_FILE, MetricsJsonl, start_log
from kinherit.train.progress import ProgressBar
from kinherit.train.trainer import KinheritTrainer


def training_arguments(train: dict[str, Any], out: str | Path, resuming: bool = False) -> TrainingArguments:
    """`TrainingArguments` from a `train:` section (defaults already applied); checkpoints go to `<out>/checkpoints`.
    The section is copied whole: TrainingArguments rewrites a nested `fsdp_config` in place (its own keys replace
    the user's), and the section is what `config.resolved.yaml` records."""
    args = deepcopy(train)
    if resuming:  # the step-0 evaluation is already in metrics.jsonl
        args["eval_on_start"] = False
    if "eval_steps" in args and "eval_strategy" not in args:
        args["eval_strategy"] = "steps"
    args.setdefault("save_strategy", "steps")
    if not torch.cuda.is_available():  # lets torchrun / accelerate start gloo DDP on CPU-only machines
        args.setdefault("use_cpu", True)
    try:
        return TrainingArguments(output_dir=str(Path(out) / "checkpoints"), **args)
    except (ValueError, TypeError) as err:
        raise KinheritError(f"invalid train settings: {str(err).splitlines()[0]}") from None


def last_checkpoint(out: Path) -> str | None:
    """The latest complete `checkpoint-N` of the run folder `out`, or None."""
    checkpoints = out / "checkpoints"
    return get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None


def resume_checkpoint(out: Path, resume: bool) -> str | None:
    """The checkpoint to resume from (`resume`), or None for a fresh run; an error when that is impossible."""
    checkpoints = out / "checkpoints"
    last = last_checkpoint(out)
    if resume and last is None:
        raise KinheritError(f"--resume: no complete checkpoint in {checkpoints}; start without --resume")
    if not resume and last is not None:
        raise KinheritError(
            f"{out} already holds a run (checkpoints/); pass --resume to continue it or choose another out"
        )
    return last


def checkpoint_step(checkpoint: str | None) -> int | None:
    return None if checkpoint is None else int(Path(checkpoint).name.split("-")[-1])


def fit(
    trainer: KinheritTrainer,
    out: Path,
    checkpoint: str | None,
    callbacks: Sequence[TrainerCallback] = (),
    perplexity: bool = True,
    final: bool = True,
    bar: ProgressBar | None = None,
) -> list[dict[str, Any]]:
    """Train (resuming from `checkpoint`) with the metrics log and the progress bar (`bar`, which the segments of a
    staged run share, else a new one); make sure the last step is evaluated when it ends the run (`final`; a stage
    of a staged run ends at a growth instead, and its bar goes on). Returns every evaluation in the trainer's log
    history (`eval_loss`, ...)."""
    metrics = out / METRICS_FILE
    time_offset = start_log(metrics, checkpoint_step(checkpoint)) if trainer.args.process_index == 0 else 0.0
    writer = MetricsJsonl(metrics, trainer, time_offset, perplexity)
    bar = bar if bar is not None else ProgressBar(writer.latest, out.name)
    bar.latest, bar.close_at_end = writer.latest, final
    trainer.add_callback(writer)
    trainer.add_callback(bar)
    for callback in callbacks:
        trainer.add_callback(callback)
    trainer.train(resume_from_checkpoint=checkpoint)
    evaluated = [e for e in trainer.state.log_history if "eval_loss" in e]
    if final and (not evaluated or evaluated[-1]["step"] != trainer.state.global_step):
        trainer.evaluate()
        evaluated = [e for e in trainer.state.log_history if "eval_loss" in e]
    return evaluated

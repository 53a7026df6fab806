"""`KinheritTrainer`: `transformers.Trainer` plus honest accounting, exact loss logging and atomic checkpoints.

What it changes, and nothing else:
- the training sampler is `EpochShuffleSampler` (order is a function of seed and epoch → exact resume);
- every loss term is accumulated unrounded and logged as its mean since the last log, all-reduced over
  processes; a non-finite loss stops the run with an actionable error;
- each training log carries `tokens` and `flops` (cumulative, from the step count, so resume-exact);
- checkpoints are written to `<out>/.staging/checkpoint-N` and renamed into place when complete.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from kinherit.data.dataset import EpochShuffleSampler
from kinherit.errors import KinheritError
from kinherit.io import replace_dir
from kinherit.metrics.flops import FlopsPerToken

STAGING = ".staging"


class KinheritTrainer(Trainer):
    """Trainer for packed-token pre-training; see the module docstring for what differs."""

    def __init__(self, *args: Any, student_flops: FlopsPerToken, sampler_seed: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.student_flops = student_flops
        self.sampler_seed = sampler_seed
        self._term_sums: dict[str, torch.Tensor] = {}
        self._term_counts: dict[str, int] = {}
        self._staging_checkpoints = False

    # ---- data order ----
    def _get_train_sampler(self, train_dataset: Any = None) -> EpochShuffleSampler:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return EpochShuffleSampler(len(dataset), self.sampler_seed)

    # ---- loss and its logging ----
    def record_terms(self, **terms: torch.Tensor) -> None:
        """Accumulate detached loss terms of one micro-batch (no host sync); a term may skip micro-batches."""
        for name, value in terms.items():
            value = value.detach().float()
            self._term_sums[name] = self._term_sums.get(name, torch.zeros_like(value)) + value
            self._term_counts[name] = self._term_counts.get(name, 0) + 1

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if model.training:
            # A loss normalised by the whole step's token count is a share of the step's mean: ×GA makes it a mean.
            scale = self.current_gradient_accumulation_steps if self._scaled_for_ga(num_items_in_batch) else 1
            self.record_terms(loss=loss * scale)
        return (loss, outputs) if return_outputs else loss

    def _scaled_for_ga(self, num_items_in_batch: Any) -> bool:
        """Whether the Trainer treats this micro-batch loss as already divided over the accumulated step."""
        if self.loss_is_scaled_for_ga is not None:
            return self.loss_is_scaled_for_ga
        return (self.model_accepts_loss_kwargs and num_items_in_batch is not None) or self.compute_loss_func is not None

    def _mean_terms(self) -> dict[str, float]:
        """Mean of each recorded term over the micro-batches that recorded it since the last log, averaged over processes."""
        if not self._term_sums:
            return {}
        names = sorted(self._term_sums)
        stacked = torch.stack([self._term_sums[n] / self._term_counts[n] for n in names])
        stacked = self.accelerator.reduce(stacked.to(self.args.device), reduction="mean")
        self._term_sums, self._term_counts = {}, {}
        return dict(zip(names, stacked.tolist()))

    def accounting(self, step: int) -> dict[str, float]:
        """Cumulative tokens and training FLOPs after `step` optimizer steps."""
        tokens = step * self.tokens_per_step
        return {"tokens": tokens, "flops": tokens * self.student_flops.train}

    @property
    def tokens_per_step(self) -> int:
        args = self.args
        return args.train_batch_size * args.gradient_accumulation_steps * args.world_size * self.student_flops.seq_len

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            terms = self._mean_terms()
            logs.update(terms)
            if not all(map(math.isfinite, terms.values())):
                raise KinheritError(
                    f"the training loss became {terms.get('loss')} at step {self.state.global_step}; "
                    "lower train.learning_rate, raise train.warmup_steps or set train.max_grad_norm"
                )
            logs.update(self.accounting(self.state.global_step))
        super().log(logs, start_time)

    # ---- atomic checkpoints ----
    def _get_output_dir(self, trial: Any) -> str:
        root = super()._get_output_dir(trial)
        return os.path.join(root, STAGING) if self._staging_checkpoints else root

    def _save_checkpoint(self, model: torch.nn.Module, trial: Any) -> None:
        """Write the checkpoint under `.staging/`, then rename it into `checkpoint-N` in one step."""
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        root = super()._get_output_dir(trial)
        staging, final = Path(root, STAGING, name), Path(root, name)
        if self.args.should_save:
            shutil.rmtree(Path(root, STAGING), ignore_errors=True)  # leftovers of a save that was killed
        self.accelerator.wait_for_everyone()
        self._staging_checkpoints = True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging_checkpoints = False
        if self.state.best_model_checkpoint == str(staging):
            self.state.best_model_checkpoint = str(final)
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            replace_dir(staging, final)
            shutil.rmtree(Path(root, STAGING), ignore_errors=True)
            rotate_checkpoints(output_dir=root, save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)
        self.accelerator.wait_for_everyone()


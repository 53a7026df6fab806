"""`KinheritTrainer`: `transformers.Trainer` given an objective, plus honest accounting, exact loss logging,
a quiet console and atomic checkpoints. Pre-training, knowledge inheritance and fine-tuning all use it.

What it changes, and nothing else:
- the training loss comes from the `objective` (`kinherit.train.objective`); evaluation uses the model's own loss;
- gradient accumulation is handled the same way for every objective: a micro-batch mean is divided by the
  accumulation steps (`loss_is_scaled_for_ga = False`), a loss normalised by the step's item count is not;
- every loss term is accumulated unrounded and logged as its mean since the last log, all-reduced over
  processes; the logged `loss` is the optimizer step's mean whatever the accumulation; a non-finite loss
  stops the run with an actionable error;
- a mixture-of-experts model's router auxiliary loss (`outputs.aux_loss`, already inside its training loss as
  `router_aux_loss_coef`·aux_loss when `output_router_logits` is on) is logged as the term `aux_loss`; evaluation
  asks the model for its LM loss alone (`output_router_logits=False`), so `val_loss` stays comparable to dense runs;
- each training log carries `tokens` and `flops` (cumulative, from the step count, so resume-exact), plus
  the objective's extra FLOPs (`teacher_flops`);
- with `sampler_seed`, the training sampler is `EpochShuffleSampler` (order is a function of seed and epoch);
- the Trainer's own console output (log dicts, tqdm bars) is removed; `kinherit.train.progress` replaces it;
- checkpoints are written to `<out>/.staging/checkpoint-N` and renamed into place when complete, with the
  objective's state in `objective.json`.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from transformers import PreTrainedModel, Trainer
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints
from transformers.utils import SAFE_WEIGHTS_NAME

from kinherit.data.dataset import EpochShuffleSampler
from kinherit.errors import KinheritError
from kinherit.io import replace_dir, write_json
from kinherit.metrics.flops import FlopsPerToken
from kinherit.train.objective import Objective

STAGING = ".staging"
OBJECTIVE_STATE = "objective.json"


class KinheritTrainer(Trainer):
    """Trainer for every kinherit run; see the module docstring for what differs."""

    def __init__(self, *args: Any, objective: Objective, student_flops: FlopsPerToken, sampler_seed: int | None = None,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.objective, self.student_flops, self.sampler_seed = objective, student_flops, sampler_seed
        self.loss_is_scaled_for_ga = objective.loss_is_scaled_for_ga
        self._term_sums: dict[str, torch.Tensor] = {}
        self._term_counts: dict[str, int] = {}
        self._staging_checkpoints = False
        self.remove_callback(PrinterCallback)
        self.remove_callback(ProgressCallback)

    # ---- data order ----
    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        if self.sampler_seed is None:
            return super()._get_train_sampler(train_dataset)
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return EpochShuffleSampler(len(dataset), self.sampler_seed)

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        self._signature_columns += [key for key in self.objective.extra_columns if key not in self._signature_columns]

    # ---- loss and its logging ----
    def model_loss(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor], num_items_in_batch: Any = None) -> tuple[torch.Tensor, Any]:
        """The model's own loss and outputs (Trainer's: normalised by `num_items_in_batch` when given and accepted)."""
        return super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)

    def record_terms(self, **terms: torch.Tensor) -> None:
        """Accumulate detached loss terms of one micro-batch (no host sync); a term may skip micro-batches."""
        for name, value in terms.items():
            value = value.detach().float()
            self._term_sums[name] = self._term_sums.get(name, torch.zeros_like(value)) + value
            self._term_counts[name] = self._term_counts.get(name, 0) + 1

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
        if not model.training:
            inputs = {k: v for k, v in inputs.items() if k not in self.objective.extra_columns}
            if _adds_router_loss(model):
                inputs["output_router_logits"] = False
            loss, outputs = self.model_loss(model, inputs, num_items_in_batch)
        else:
            loss, outputs, terms = self.objective.training_loss(self, model, inputs, num_items_in_batch)
            aux = getattr(outputs, "aux_loss", None) if not isinstance(outputs, dict) else outputs.get("aux_loss")
            if aux is not None:
                terms = {**terms, "aux_loss": aux}
            # A loss normalised by the whole step's item count is a share of the step's mean: ×GA makes it a mean.
            scale = self.current_gradient_accumulation_steps if self._scaled_for_ga(num_items_in_batch) else 1
            self.record_terms(loss=loss * scale, **terms)
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

    # ---- compute accounting ----
    def accounting(self, step: int) -> dict[str, float]:
        """Cumulative tokens and FLOPs after `step` optimizer steps: student training plus the objective's extras."""
        tokens = step * self.tokens_per_step
        extra = self.objective.extra_flops(step, self.tokens_per_step)
        return {"tokens": tokens, "flops": tokens * self.student_flops.train + sum(extra.values()), **extra}

    @property
    def tokens_per_step(self) -> int:
        """Sequences per optimizer step × sequence length (padding included: the compute is dense)."""
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
            self.objective.on_log(self, terms)
            logs.update(self.accounting(self.state.global_step))
        super().log(logs, start_time)

    # ---- resume and atomic checkpoints ----
    def train(self, resume_from_checkpoint: str | None = None, **kwargs: Any) -> Any:
        """As Trainer.train (given the checkpoint's path); a resumed run first restores the objective's state."""
        if isinstance(resume_from_checkpoint, (str, os.PathLike)):
            saved = Path(resume_from_checkpoint, OBJECTIVE_STATE)
            if saved.is_file():
                self.objective.load_state_dict(json.loads(saved.read_text()))
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

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
            write_json(staging / OBJECTIVE_STATE, self.objective.state_dict())
            replace_dir(staging, final)
            shutil.rmtree(Path(root, STAGING), ignore_errors=True)
            rotate_checkpoints(output_dir=root, save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)
        self.accelerator.wait_for_everyone()

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: torch.nn.Module | None = None) -> None:
        """Trainer reads a checkpoint's `model.safetensors` as raw keys, but `save_pretrained` writes some models in
        transformers' on-disk layout (mixture-of-experts blocks as per-expert `block_sparse_moe.experts.{e}.w1`
        matrices, not the fused 3-D tensors the model holds), which only `from_pretrained` converts back. Such a
        checkpoint is loaded through `from_pretrained`, so resume restores every weight (otherwise the experts would
        silently restart from the initial weights)."""
        inner = getattr(model if model is not None else self.model, "module", model if model is not None else self.model)
        weights = os.path.join(resume_from_checkpoint, SAFE_WEIGHTS_NAME)
        if not self.is_fsdp_enabled and isinstance(inner, PreTrainedModel) and os.path.isfile(weights):
            with safe_open(weights, "pt") as handle:
                stored = set(handle.keys())
            if not stored <= set(inner.state_dict()):
                dtype = next(inner.parameters()).dtype
                loaded = type(inner).from_pretrained(resume_from_checkpoint, dtype=dtype)
                inner.load_state_dict(loaded.state_dict(), strict=True)
                return
        super()._load_from_checkpoint(resume_from_checkpoint, model)


def _adds_router_loss(model: torch.nn.Module) -> bool:
    """Whether `model` (possibly wrapped) adds a router auxiliary loss to its loss: a mixture-of-experts
    model whose config has `output_router_logits` on and whose forward takes it as an argument."""
    inner = getattr(model, "module", model)
    return bool(getattr(getattr(inner, "config", None), "output_router_logits", False)) and \
        "output_router_logits" in inspect.signature(inner.forward).parameters

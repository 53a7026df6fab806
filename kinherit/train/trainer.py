"""`KinheritTrainer`: `transformers.Trainer` given an objective, plus honest accounting, exact loss logging,
a quiet console and atomic checkpoints. Pre-training, knowledge inheritance and fine-tuning all use it.

What it changes, and nothing else:
- the training loss comes from the `objective` (`kinherit.train.objective`), given the model's own loss and
  outputs; the objective's extra batch fields are taken out of the batch before the forward pass;
  evaluation uses the model's own loss, and the objective sees each evaluation's metrics (`on_evaluate`) with
  the per-block sums it asked of every evaluation batch (`eval_terms`), gathered over processes as Trainer
  gathers the eval losses (the duplicates that even out the last batch dropped) and summed over the split;
- gradient accumulation is handled the same way for every objective: a micro-batch mean is divided by the
  accumulation steps, a loss normalised by the step's item count (`objective.normalised_by_step`) is not;
- a mixture-of-experts model's router auxiliary loss (`outputs.aux_loss`, which transformers adds to its loss as
  `router_aux_loss_coef`·aux_loss) is taken out of the model's loss before the objective sees it and added back
  once per optimizer step at its configured coefficient, whatever the accumulation steps and the number of
  processes: each micro-batch adds c·aux/GA (c·aux when the trainer divides by GA itself), so the step's
  gradient is that of c·mean(aux). It is logged as `aux_loss`, outside `loss`; evaluation asks the model
  for its LM loss alone (`output_router_logits=False`), so `val_loss` stays comparable to dense runs;
- every loss term is accumulated unrounded and logged as its mean since the last log, all-reduced over
  processes; the logged `loss` is the optimizer step's mean whatever the accumulation; a non-finite loss
  stops the run with an actionable error;
- each training log carries `tokens` and `flops` (cumulative, from the step count, so resume-exact), plus
  the objective's extra FLOPs (`teacher_flops`) and the FLOPs spent before the first step (`upfront_flops`,
  e.g. `selection_flops` for scoring the training data);
- with `sampler_seed`, the training sampler is `EpochShuffleSampler` (order is a function of seed and epoch);
- the Trainer's own console output (log dicts, tqdm bars) is removed; `kinherit.train.progress` replaces it;
- checkpoints are written to `<out>/.staging/checkpoint-N` and renamed into place when complete, with the
  objective's state in `objective.json` and the optimizer's parameter names in its state-dict order
  (`optimizer_params.json`), so its state can be read by name (`named_moments`) without building a trainer;
- a checkpoint a growth wrote (`kinherit.train.state_growth`) holds the optimizer state by parameter name
  (`optimizer_by_name.pt`) instead of `optimizer.pt`/`scheduler.pt`: the trainer puts it into its own optimizer and
  positions its schedule at the checkpoint's step (`_load_optimizer_and_scheduler`).
"""

from __future__ import annotations

import inspect
import json
import math
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from transformers import PreTrainedModel, Trainer
from transformers.trainer import OPTIMIZER_NAME, TRAINER_STATE_NAME
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints
from transformers.utils import SAFE_WEIGHTS_NAME

from kinherit.data.dataset import EpochShuffleSampler
from kinherit.errors import KinheritError
from kinherit.hf_folder import tied_names
from kinherit.io import replace_dir, write_json
from kinherit.metrics.flops import FlopsPerToken
from kinherit.train.objective import Objective

STAGING = ".staging"
OBJECTIVE_STATE = "objective.json"
STAGE_STATE = "stage.json"
OPTIMIZER_PARAMS = "optimizer_params.json"
"""The optimizer's parameter names, in the order of its state dict's indices."""
GROWN_OPTIMIZER = "optimizer_by_name.pt"
"""{"state": {parameter name: AdamW state}}: the optimizer state a growth wrote (no state: a fresh optimizer)."""


@dataclass(frozen=True)
class Segment:
    """The part of a run one trainer trains. A plain run is one segment; a staged run (growth inside the run,
    `kinherit.train.staged`) has one per model shape. FLOPs before the segment are `start_flops`, counted at the
    sizes of the earlier stages; `lr_scales` multiply a parameter's LR (and divide its weight decay), and
    `lr_multiplier(t)` multiplies the schedule's LR at step t (a re-warm after growth)."""

    stage: int = 0
    start_step: int = 0
    start_flops: float = 0.0
    lr_scales: Mapping[str, float] = field(default_factory=dict)
    lr_multiplier: Callable[[int], float] | None = None

    def student_flops(self, step: int, tokens_per_step: int, train_flops_per_token: float) -> float:
        """Student training FLOPs after `step` optimizer steps: the earlier stages' (at their sizes) plus this
        segment's steps at `train_flops_per_token`, the one place this sum is written."""
        return self.start_flops + (step - self.start_step) * tokens_per_step * train_flops_per_token


class KinheritTrainer(Trainer):
    """Trainer for every kinherit run; see the module docstring for what differs."""

    def __init__(
        self,
        *args: Any,
        objective: Objective,
        student_flops: FlopsPerToken,
        sampler_seed: int | None = None,
        segment: Segment = Segment(),
        upfront_flops: Mapping[str, float] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.objective, self.student_flops, self.sampler_seed, self.segment = (
            objective,
            student_flops,
            sampler_seed,
            segment,
        )
        self.upfront_flops = dict(upfront_flops or {})
        self.loss_is_scaled_for_ga = None if objective.normalised_by_step else False  # None: Trainer's rule
        self._term_sums: dict[str, torch.Tensor] = {}
        self._term_counts: dict[str, int] = {}
        self._eval_sums: dict[str, torch.Tensor] = {}
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
    def _record_terms(self, terms: dict[str, torch.Tensor]) -> None:
        """Accumulate detached loss terms of one micro-batch (no host sync); a term may skip micro-batches."""
        for name, value in terms.items():
            value = value.detach().float()
            self._term_sums[name] = self._term_sums.get(name, torch.zeros_like(value)) + value
            self._term_counts[name] = self._term_counts.get(name, 0) + 1

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
        extras = {key: inputs.pop(key) for key in self.objective.extra_columns if key in inputs}
        if not model.training:
            if adds_router_loss(model):
                inputs["output_router_logits"] = False
            loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
            self._record_eval(self.objective.eval_terms(outputs, inputs, extras))
            return (loss, outputs) if return_outputs else loss
        by_step = self.objective.normalised_by_step
        lm, outputs = super().compute_loss(model, inputs, True, num_items_in_batch if by_step else None)
        share = (
            by_step and self.model_accepts_loss_kwargs and num_items_in_batch is not None
        )  # a share of the step's mean
        aux = outputs.get("aux_loss") if isinstance(outputs, dict) else None
        if aux is not None:  # transformers added c·aux to its loss (×processes for a share): take it out
            lm = lm - self._aux_factor(model, share) * aux
        loss, terms = self.objective.loss(self.state.global_step, lm, outputs, inputs, extras)
        ga = self.current_gradient_accumulation_steps
        self._record_terms(
            {"loss": loss * (ga if share else 1), **terms, **({"aux_loss": aux} if aux is not None else {})}
        )
        if aux is not None:  # once per step at its coefficient: Trainer divides a micro-batch mean by GA, not a share
            loss = loss + _router_coefficient(model) * aux / (ga if share else 1)
        return (loss, outputs) if return_outputs else loss

    def _aux_factor(self, model: torch.nn.Module, share: bool) -> float:
        """The factor of aux_loss inside the loss `Trainer.compute_loss` returned: c, times the processes when
        Trainer scaled a step-normalised loss by them (`average_tokens_across_devices`)."""
        return _router_coefficient(model) * (
            self.accelerator.num_processes if share and self.args.average_tokens_across_devices else 1
        )

    def _record_eval(self, terms: dict[str, torch.Tensor]) -> None:
        """Add one evaluation batch's per-block values (B,) to the split's sums, over all processes."""
        if terms:
            gathered = self.accelerator.gather_for_metrics({name: value.detach() for name, value in terms.items()})
            for name, values in gathered.items():
                self._eval_sums[name] = self._eval_sums.get(name, 0.0) + values.sum()

    def _mean_terms(self) -> dict[str, float]:
        """Mean of each recorded term over the micro-batches that recorded it since the last log, averaged over
        processes."""
        if not self._term_sums:
            return {}
        names = sorted(self._term_sums)
        stacked = torch.stack([self._term_sums[n] / self._term_counts[n] for n in names])
        stacked = self.accelerator.reduce(stacked.to(self.args.device), reduction="mean")
        self._term_sums, self._term_counts = {}, {}
        return dict(zip(names, stacked.tolist()))

    # ---- compute accounting ----
    def accounting(self, step: int) -> dict[str, float]:
        """Cumulative tokens and FLOPs after `step` optimizer steps: student training (earlier stages at their own
        sizes) plus the objective's extras and the FLOPs spent before training; a staged run also says its stage."""
        tokens = step * self.tokens_per_step
        extra = {**self.upfront_flops, **self.objective.extra_flops(step, self.tokens_per_step)}
        student = self.segment.student_flops(step, self.tokens_per_step, self.student_flops.train)
        stage = {"stage": self.segment.stage} if self.segment.stage or self.segment.start_step else {}
        return {"tokens": tokens, "flops": student + sum(extra.values()), **extra, **stage}

    @property
    def tokens_per_step(self) -> int:
        return tokens_per_step(self.args, self.student_flops.seq_len)

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
        elif "eval_loss" in logs:
            sums, self._eval_sums = {name: float(value) for name, value in self._eval_sums.items()}, {}
            logs.update(self.objective.on_evaluate(self.state.global_step, {**logs, **sums}))
        super().log(logs, start_time)

    # ---- optimizer and schedule of a segment ----
    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        """Trainer's optimizer, with one parameter group per (weight decay, LR scale) when the segment scales LRs:
        lr·s and weight_decay/s, so lr·weight_decay is kept (decoupled decay shrinks W by lr·wd per step)."""
        if not self.segment.lr_scales or self.optimizer is not None:
            return super().create_optimizer(model) if model is not None else super().create_optimizer()
        model = model if model is not None else self.model
        decay = set(self.get_decay_parameter_names(model))
        groups: dict[tuple[bool, float], list[torch.nn.Parameter]] = {}
        for name, param in model.named_parameters():
            if param.requires_grad:
                groups.setdefault((name in decay, self.segment.lr_scales.get(name, 1.0)), []).append(param)
        optimizer_cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        args = self.args
        self.optimizer = optimizer_cls(
            [
                {
                    "params": params,
                    "lr": args.learning_rate * scale,
                    "weight_decay": args.weight_decay / scale if decays else 0.0,
                }
                for (decays, scale), params in sorted(groups.items(), key=lambda item: (not item[0][0], item[0][1]))
            ],
            **{k: v for k, v in kwargs.items() if k != "lr"},
        )
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None) -> Any:
        """Trainer's schedule, multiplied by the segment's `lr_multiplier(t)` (a function of the step alone, so resume
        is exact)."""
        scheduler = super().create_scheduler(num_training_steps, optimizer)
        multiplier = self.segment.lr_multiplier
        if multiplier is not None and hasattr(scheduler, "lr_lambdas"):
            scheduler.lr_lambdas = [
                partial(_scaled, fn, multiplier) for fn in scheduler.lr_lambdas
            ]  # saved as {} like transformers' own
            for group, fn in zip(scheduler.optimizer.param_groups, scheduler.lr_lambdas):
                group["lr"] = group["initial_lr"] * fn(scheduler.last_epoch)
        return scheduler

    # ---- resume and atomic checkpoints ----
    def train(self, resume_from_checkpoint: str | None = None, **kwargs: Any) -> Any:
        """As Trainer.train (given the checkpoint's path); a resumed run first restores the objective's state."""
        if isinstance(resume_from_checkpoint, (str, os.PathLike)):
            saved = Path(resume_from_checkpoint, OBJECTIVE_STATE)
            if saved.is_file():
                self.objective.load_state_dict(json.loads(saved.read_text()))
        self.objective.start(self.accelerator)
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
            write_json(staging / STAGE_STATE, {"stage": self.segment.stage})
            if (staging / OPTIMIZER_NAME).is_file() and not (self.is_fsdp_enabled or self.is_deepspeed_enabled):
                write_json(staging / OPTIMIZER_PARAMS, self._optimizer_param_names())  # what a growth reads by name
            replace_dir(staging, final)
            shutil.rmtree(Path(root, STAGING), ignore_errors=True)
            rotate_checkpoints(
                output_dir=root,
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )
        self.accelerator.wait_for_everyone()

    def _optimizer_param_names(self) -> list[str]:
        """The name of each parameter the optimizer holds, in its state dict's index order."""
        names = {id(p): n for n, p in self.accelerator.unwrap_model(self.model).named_parameters()}
        return [names[id(p)] for group in self.optimizer.param_groups for p in group["params"]]

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        """As Trainer's, and for a checkpoint a growth wrote: its by-name state into this optimizer (parameters
        without an entry start fresh) and the schedule positioned at the checkpoint's step (`position_schedule`)."""
        grown = Path(checkpoint, GROWN_OPTIMIZER) if checkpoint is not None else None
        if grown is None or not grown.is_file():
            return super()._load_optimizer_and_scheduler(checkpoint)
        saved = torch.load(grown, map_location="cpu", weights_only=True)["state"]
        index = {name: i for i, name in enumerate(self._optimizer_param_names())}
        unknown = set(saved) - set(index)
        if unknown:
            raise KinheritError(
                f"{grown} holds state for parameters the model does not have ({sorted(unknown)[0]}, ...); "
                "the checkpoint does not belong to this model"
            )
        state = self.optimizer.state_dict()
        state["state"] = {index[name]: moments for name, moments in saved.items()}
        self.optimizer.load_state_dict(state)  # torch puts each tensor on its parameter's device and dtype
        step = json.loads(Path(checkpoint, TRAINER_STATE_NAME).read_text())["global_step"]
        position_schedule(self.lr_scheduler, step)

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        """As Trainer's, without calling a tied parameter missing: `save_pretrained` stores a tied head once, under
        its embedding's name, so every resume (and every growth of a staged run) of a tied model would warn."""
        tied = tied_names(self.accelerator.unwrap_model(self.model))
        super()._issue_warnings_after_load(
            load_result._replace(missing_keys=[key for key in load_result.missing_keys if key not in tied])
        )

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: torch.nn.Module | None = None) -> None:
        """Trainer reads a checkpoint's `model.safetensors` as raw keys, but `save_pretrained` writes some models in
        transformers' on-disk layout (mixture-of-experts blocks as per-expert `block_sparse_moe.experts.{e}.w1`
        matrices, not the fused 3-D tensors the model holds), which only `from_pretrained` converts back. Such a
        checkpoint is loaded through `from_pretrained`, so resume restores every weight (otherwise the experts would
        silently restart from the initial weights)."""
        inner = getattr(
            model if model is not None else self.model, "module", model if model is not None else self.model
        )
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


def tokens_per_step(args: Any, seq_len: int) -> int:
    """Sequences per optimizer step × sequence length (padding included: the compute is dense)."""
    return args.train_batch_size * args.gradient_accumulation_steps * args.world_size * seq_len


def position_schedule(scheduler: Any, step: int) -> None:
    """Put a fresh `LambdaLR` (every transformers schedule but reduce_lr_on_plateau) at `step`: as if it had
    stepped `step` times, so each group's LR is initial_lr · λ(step), through the scheduler's public state dict."""
    state = scheduler.state_dict()
    lrs = [base * fn(step) for base, fn in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    scheduler.load_state_dict({**state, "last_epoch": step, "_step_count": step + 1, "_last_lr": lrs})
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr


def _scaled(schedule: Callable[[int], float], multiplier: Callable[[int], float], step: int) -> float:
    """λ(t)·m(t): a schedule's multiplier times a segment's."""
    return schedule(step) * multiplier(step)


def _router_coefficient(model: torch.nn.Module) -> float:
    """c, the weight transformers gives a mixture-of-experts model's router auxiliary loss."""
    return float(getattr(getattr(model, "module", model).config, "router_aux_loss_coef", 0.0))


def adds_router_loss(model: torch.nn.Module) -> bool:
    """Whether `model` (possibly wrapped) adds a router auxiliary loss to its loss: a mixture-of-experts
    model whose config has `output_router_logits` on and whose forward takes it as an argument."""
    inner = getattr(model, "module", model)
    return (
        bool(getattr(getattr(inner, "config", None), "output_router_logits", False))
        and "output_router_logits" in inspect.signature(inner.forward).parameters
    )

"""Pre-training: corpus → packed blocks (with a `selection:`, those small models choose) → `KinheritTrainer` with
the LM objective (or knowledge inheritance when the config has a `teacher:`) → `out/model`.

Output folder layout (see `kinherit.train.run` for the shared part):
    config.resolved.yaml   the full config (defaults filled in), loadable with `--config`
    metrics.jsonl          training and evaluation events (`kinherit.metrics.log`)
    checkpoints/           Trainer `checkpoint-N/` folders (resume with `--resume`)
    model/                 HF model + tokenizer, written atomically at the end
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, TrainerCallback, default_data_collator, set_seed

from kinherit.arch.build import build_model
from kinherit.config import RunConfig, dump_yaml, resolved_growth
from kinherit.data.dataset import MaskingSpec, PackedBlocks
from kinherit.data.packing import PackedCorpus, corpus_fingerprint, prepare_corpus
from kinherit.data.tokenizer import load_tokenizer
from kinherit.errors import KinheritError
from kinherit.hf_folder import library_console, load_lm, task_of
from kinherit.inherit.objective import prepare_inheritance
from kinherit.inherit.selection import SelectedBlocks, select_blocks
from kinherit.io import atomic_file, replace_dir
from kinherit.metrics.flops import flops_per_token
from kinherit.metrics.log import METRICS_FILE, append_event, read_metrics, time_spent
from kinherit.train.objective import ModelLoss
from kinherit.train.preflight import check_before_data, with_loaded_sizes
from kinherit.train.progress import ProgressBar
from kinherit.train.record import start_run
from kinherit.train.resume_check import check_resume
from kinherit.train.run import checkpoint_step, fit, last_checkpoint, resume_checkpoint, training_arguments
from kinherit.train.staged import (
    Stages,
    StopAt,
    check_stages,
    describe_growth,
    final_growth_record,
    grow_checkpoint,
    grown_learning_rate,
    held_batch,
    keep_recorded_steps,
    segment_of,
    stage_of,
)
from kinherit.train.trainer import KinheritTrainer, Segment, tokens_per_step


@dataclass(frozen=True)
class PretrainResult:
    out: Path
    model_dir: Path
    final_step: int
    final_val_loss: float


def _datasets(corpus: PackedCorpus, tokenizer: Any, model: PreTrainedModel, config: RunConfig, seed: int):  # noqa: ANN202
    seq_len = config.data.seq_len
    masking = None
    if task_of(model.config) == "masked":
        if tokenizer.mask_token_id is None:
            raise KinheritError(
                "masked-LM training needs a tokenizer with a mask token; train one (data.tokenizer.train_vocab_size)"
            )
        masking = MaskingSpec(tokenizer.mask_token_id, len(tokenizer), tokenizer.all_special_ids, seed)
    train = PackedBlocks(corpus.train_path, corpus.dtype, seq_len, masking)
    val = PackedBlocks(corpus.val_path, corpus.dtype, seq_len, masking, config.data.max_val_blocks)
    for name, split, tokens in (("training", train, corpus.train_tokens), ("validation", val, corpus.val_tokens)):
        if len(split) == 0:
            raise KinheritError(
                f"the {name} split has {tokens} tokens, fewer than one block of data.seq_len={seq_len}; "
                "add text, lower data.seq_len or raise data.val_fraction"
            )
    return train, val


def _save_final(trainer: KinheritTrainer, tokenizer: Any, out: Path) -> Path:
    """Every process writes its part into `.tmp-model`; the main process renames it to `model`."""
    target, staging = out / "model", out / ".tmp-model"
    trainer.save_model(str(staging))
    trainer.accelerator.wait_for_everyone()
    if trainer.args.should_save:
        (staging / "training_args.bin").unlink(missing_ok=True)  # a pickle; the resolved config is the record
        tokenizer.save_pretrained(str(staging))
        replace_dir(staging, target)
    trainer.accelerator.wait_for_everyone()
    return target


def resolved_yaml(config: RunConfig) -> str:
    """The config as a run records it in `config.resolved.yaml`: every default filled in, loadable with `--config`."""
    config = with_loaded_sizes(config)  # hook: kinherit.train.preflight (model.from's real sizes)
    train = config.train_args
    return dump_yaml(
        config.model_copy(update={"train": train, "growth": resolved_growth(config.growth, train["max_steps"])})
    )


@library_console()  # one bar per run: transformers' bars and known-harmless notices are silenced
def pretrain(config: RunConfig, resume: bool = False, callbacks: Sequence[TrainerCallback] = ()) -> PretrainResult:
    """Train `config.model` on `config.data`: self-learning, or knowledge inheritance with `config.teacher`;
    with `config.growth`, the model grows at each stage's step within the run (`kinherit.train.staged`)."""
    out = Path(config.out)
    checkpoint = resume_checkpoint(out, resume)
    if checkpoint is not None:
        config = keep_recorded_steps(config, out)
    check_stages(config)
    grown_lr = grown_learning_rate(config)
    peak = {"learning_rate": grown_lr} if grown_lr is not None else {}
    args = training_arguments(
        {"prediction_loss_only": True, **config.train_args, **peak}, out, resuming=checkpoint is not None
    )
    config = check_before_data(config, args)  # hook: kinherit.train.preflight (no data needed; model.from's real sizes)
    if checkpoint is not None:  # hook: kinherit.train.resume_check (the same run, or a one-line refusal)
        check_resume(out, resolved_yaml(config), corpus_fingerprint(config.data))
    with args.main_process_first(local=False, desc="tokenize and pack the corpus"):
        corpus = prepare_corpus(config.data, main_process=args.process_index == 0)
    tokenizer = load_tokenizer(corpus.tokenizer_dir)
    if args.process_index == 0:
        print(corpus.describe(), flush=True)
        step_tokens = tokens_per_step(args, config.data.seq_len)
        if (repeated := corpus.epochs_notice(step_tokens, args.max_steps)) is not None:
            print(repeated, flush=True)
        if grown_lr is not None:
            print(
                f"learning rate {config.train_args['learning_rate']:g} × growth_lr_factor "
                f"{config.growth_lr_factor:g} = {grown_lr:g}: {config.model.from_} was grown (growth_lr_factor: 1 "
                "keeps train.learning_rate)",
                flush=True,
            )
        with atomic_file(out / "config.resolved.yaml") as handle:
            handle.write(resolved_yaml(config))

    set_seed(args.seed)
    model = build_model(config.model, tokenizer, config.data.seq_len)
    data_seed = args.data_seed if args.data_seed is not None else args.seed  # masking and data order share it
    train, val = _datasets(corpus, tokenizer, model, config, data_seed)
    objective, evaluated_on = ModelLoss(), val
    if config.teacher is not None:  # knowledge inheritance, fed cached teacher targets if any
        train, evaluated_on, objective = prepare_inheritance(
            config, corpus, tokenizer, model, train, args.max_steps, val
        )
    upfront: dict[str, float] = {}
    if config.selection is not None:  # the main process scores (or reads the cache), then the others read it
        with args.main_process_first(local=False, desc="select the training data"):
            selection = select_blocks(config, corpus, tokenizer, args.device)
        train, upfront = SelectedBlocks(train, selection.indices), {"selection_flops": selection.flops}
        if args.process_index == 0:
            print(
                f"selection: {len(selection.indices):,} of {selection.candidates:,} scored training blocks "
                f"({selection.num_blocks:,} in all; {selection.path.name})",
                flush=True,
            )

    def make_trainer(student: PreTrainedModel, segment: Segment) -> KinheritTrainer:
        return KinheritTrainer(
            model=student,
            args=args,
            train_dataset=train,
            eval_dataset=evaluated_on,
            data_collator=default_data_collator,
            objective=objective,
            student_flops=flops_per_token(student, config.data.seq_len),
            sampler_seed=data_seed,
            segment=segment,
            upfront_flops=upfront,
        )

    stages = Stages.of(config)
    stage = stage_of(checkpoint)
    if stage > 0:
        model = load_lm(checkpoint, "checkpoint")
    trainer: KinheritTrainer | None = None
    bar, started = ProgressBar({}, out.name), False
    while True:
        end = stages.next_step(stage)
        if (
            checkpoint is not None and end is not None and checkpoint_step(checkpoint) == end
        ):  # a small model at its growth step
            _release(trainer)  # the stage's trainer, model and optimizer state are not needed to grow
            trainer = model = None
            _grow(checkpoint, out, stages, stage, held_batch(val), tokenizer, args, config.data.seq_len, bar)
            stage += 1
            model = load_lm(checkpoint, "checkpoint")
            continue
        trainer = make_trainer(model, segment_of(out, stages, stage))
        if not started:
            start_run(trainer, config, corpus, tokenizer)  # kinherit.train.record: sharding honoured; run.json
            started = True
        evaluated = fit(
            trainer,
            out,
            checkpoint,
            [*callbacks, *([StopAt(end)] if end is not None else [])],
            final=end is None,
            bar=bar,
        )
        if end is None:
            break
        checkpoint = last_checkpoint(out)
        args.eval_on_start = False  # the next stage resumes at the growth: its step was evaluated before it
    model_dir = _save_final(trainer, tokenizer, out)
    if args.process_index == 0:
        final_growth_record(out, stage, model_dir)
    return PretrainResult(out, model_dir, trainer.state.global_step, float(evaluated[-1]["eval_loss"]))


def _release(trainer: KinheritTrainer | None) -> None:
    """Free what a finished stage's trainer holds (its model, optimizer state and the accelerator's references)."""
    if trainer is not None:
        trainer.accelerator.free_memory()
        trainer.model = trainer.model_wrapped = trainer.optimizer = trainer.lr_scheduler = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _grow(
    checkpoint: str,
    out: Path,
    stages: Stages,
    stage: int,
    held: dict[str, torch.Tensor],
    tokenizer: Any,
    args: Any,
    seq_len: int,
    bar: ProgressBar,
) -> None:
    """Grow the checkpoint on the training device (main process) while the others wait; log the growth in
    metrics.jsonl (its wall time counted in `time_s`) and print its line above the bar."""
    if args.process_index == 0:
        began = time.perf_counter()
        record = grow_checkpoint(
            Path(checkpoint), out, stages, stage, held, tokenizer, tokens_per_step(args, seq_len), seq_len, args.device
        )
        metrics = out / METRICS_FILE
        spent = time_spent(read_metrics(metrics))
        append_event(
            metrics,
            {
                "step": record["at_step"],
                "growth": stage + 1,
                "student_flops": record["flops_at_step"],
                "held_loss_change": record["loss_after"] - record["loss_before"],
                "time_s": spent + time.perf_counter() - began,
            },
        )
        bar.note(describe_growth(record))
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()

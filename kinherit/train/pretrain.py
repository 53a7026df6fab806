"""Self-learning pre-training: corpus → packed blocks → `KinheritTrainer` → `out/model`.

Output folder layout:
    config.resolved.yaml   the full config (defaults filled in), loadable with `--config`
    metrics.jsonl          training and evaluation events (see `metrics_log`)
    checkpoints/           Trainer `checkpoint-N/` folders (resume with `--resume`)
    model/                 HF model + tokenizer, written atomically at the end
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, TrainerCallback, TrainingArguments, default_data_collator, set_seed
from transformers.trainer_utils import get_last_checkpoint

from kinherit.config import RunConfig, dump_yaml
from kinherit.data.dataset import MaskingSpec, PackedBlocks
from kinherit.data.packing import PackedCorpus, prepare_corpus
from kinherit.data.tokenizer import load_tokenizer
from kinherit.errors import KinheritError
from kinherit.io import atomic_file, replace_dir
from kinherit.metrics.flops import flops_per_token
from kinherit.arch.build import build_model
from kinherit.hf_folder import task_of
from kinherit.train.metrics_log import MetricsJsonl, truncate_after
from kinherit.train.trainer import KinheritTrainer

TrainerFactory = Callable[..., KinheritTrainer]


@dataclass(frozen=True)
class PretrainResult:
    out: Path
    model_dir: Path
    final_step: int
    final_val_loss: float


def training_arguments(config: RunConfig, resuming: bool = False) -> TrainingArguments:
    """`TrainingArguments` from the `train:` section; checkpoints go to `<out>/checkpoints`."""
    args = config.train_args
    if resuming:  # the step-0 evaluation is already in metrics.jsonl
        args["eval_on_start"] = False
    if "eval_steps" in args and "eval_strategy" not in args:
        args["eval_strategy"] = "steps"
    args.setdefault("save_strategy", "steps")
    args.setdefault("prediction_loss_only", True)
    if not torch.cuda.is_available():  # lets torchrun / accelerate start gloo DDP on CPU-only machines
        args.setdefault("use_cpu", True)
    try:
        return TrainingArguments(output_dir=str(Path(config.out) / "checkpoints"), **args)
    except (ValueError, TypeError) as err:
        raise KinheritError(f"invalid train settings: {str(err).splitlines()[0]}") from None


def _datasets(corpus: PackedCorpus, tokenizer: Any, model: PreTrainedModel, config: RunConfig, seed: int):  # noqa: ANN202
    seq_len = config.data.seq_len
    masking = None
    if task_of(model.config) == "masked":
        if tokenizer.mask_token_id is None:
            raise KinheritError("masked-LM training needs a tokenizer with a mask token; train one (data.tokenizer.train_vocab_size)")
        masking = MaskingSpec(tokenizer.mask_token_id, len(tokenizer), tokenizer.all_special_ids, seed)
    train = PackedBlocks(corpus.train_path, corpus.dtype, seq_len, masking)
    val = PackedBlocks(corpus.val_path, corpus.dtype, seq_len, masking)
    for name, split, tokens in (("training", train, corpus.train_tokens), ("validation", val, corpus.val_tokens)):
        if len(split) == 0:
            raise KinheritError(
                f"the {name} split has {tokens} tokens, fewer than one block of data.seq_len={seq_len}; "
                "add text, lower data.seq_len or raise data.val_fraction"
            )
    return train, val


def _resume_checkpoint(out: Path, resume: bool) -> str | None:
    checkpoints = out / "checkpoints"
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if resume and last is None:
        raise KinheritError(f"--resume: no complete checkpoint in {checkpoints}; start without --resume")
    if not resume and last is not None:
        raise KinheritError(f"{out} already holds a run (checkpoints/); pass --resume to continue it or choose another out")
    return last


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


def pretrain(
    config: RunConfig,
    resume: bool = False,
    callbacks: Sequence[TrainerCallback] = (),
    trainer_factory: TrainerFactory = KinheritTrainer,
    trainer_kwargs: dict[str, Any] | None = None,
) -> PretrainResult:
    """Train `config.model` on `config.data`; `trainer_factory` lets knowledge inheritance swap the trainer."""
    out = Path(config.out)
    checkpoint = _resume_checkpoint(out, resume)
    args = training_arguments(config, resuming=checkpoint is not None)
    with args.main_process_first(local=False, desc="tokenize and pack the corpus"):
        corpus = prepare_corpus(config.data, main_process=args.process_index == 0)
    tokenizer = load_tokenizer(corpus.tokenizer_dir)
    if args.process_index == 0:
        print(corpus.describe(), flush=True)
        with atomic_file(out / "config.resolved.yaml") as handle:
            handle.write(dump_yaml(config.model_copy(update={"train": config.train_args})))

    set_seed(args.seed)
    model = build_model(config.model, tokenizer, config.data.seq_len)
    data_seed = args.data_seed if args.data_seed is not None else args.seed  # masking and data order share it
    train, val = _datasets(corpus, tokenizer, model, config, data_seed)
    if config.teacher is not None:  # knowledge inheritance: the KI trainer, fed cached teacher targets if any
        from kinherit.inherit.trainer import KITrainer, prepare_inheritance

        train, ki_kwargs = prepare_inheritance(config, corpus, tokenizer, model, train, args.max_steps)
        trainer_factory, trainer_kwargs = KITrainer, {**(trainer_kwargs or {}), **ki_kwargs}
    trainer = trainer_factory(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=val,
        data_collator=default_data_collator,
        student_flops=flops_per_token(model, config.data.seq_len),
        sampler_seed=data_seed,
        **(trainer_kwargs or {}),
    )
    metrics_path = out / "metrics.jsonl"
    time_offset = 0.0
    if checkpoint is not None and args.process_index == 0:
        kept = truncate_after(metrics_path, int(Path(checkpoint).name.split("-")[-1]))
        time_offset = max((event.get("time_s", 0.0) for event in kept), default=0.0)
    elif args.process_index == 0:
        metrics_path.unlink(missing_ok=True)  # a run that died before its first checkpoint starts over
    trainer.add_callback(MetricsJsonl(metrics_path, trainer, time_offset))
    for callback in callbacks:
        trainer.add_callback(callback)

    trainer.train(resume_from_checkpoint=checkpoint)
    evaluated = [e for e in trainer.state.log_history if "eval_loss" in e]
    if not evaluated or evaluated[-1]["step"] != trainer.state.global_step:
        trainer.evaluate()
        evaluated = [e for e in trainer.state.log_history if "eval_loss" in e]
    model_dir = _save_final(trainer, tokenizer, out)
    return PretrainResult(out, model_dir, trainer.state.global_step, float(evaluated[-1]["eval_loss"]))

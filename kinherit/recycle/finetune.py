"""`kinherit finetune`: sequence-classification fine-tuning (full or LoRA) on `KinheritTrainer`, with the
cross-entropy objective or, given a teacher, distillation-based recycling (`distillation.py`):

    L = (1 − α)·CE(y, p_s) + α·τ²·KL(p_t(·/τ) ‖ p_s(·/τ))          (Qin et al. 2023, Recyclable Tuning)

Output folder (the run folder of `kinherit.train.run`):
    config.resolved.yaml   the full config (defaults filled in)
    metrics.jsonl          {step, tokens, flops[, teacher_flops], loss, ce[, kd], learning_rate, ...} and
                           {step, tokens, flops, val_loss, val_accuracy}; the first evaluation is at step 0
    checkpoints/           Trainer checkpoints (continue with `--resume`)
    model/  or  adapter/   the classifier (+ tokenizer), or the PEFT adapter (+ labels.json); atomic

Tokens are counted as padded (`data.max_length` per example: the compute is dense); FLOPs as in
`kinherit.metrics.flops` (3× forward for training, an upper bound under LoRA), teacher forwards included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from transformers import TrainerCallback, default_data_collator, set_seed

from kinherit.config import dump_yaml
from kinherit.data.classification import STDLIB_TASK, Split, TaskData, file_task, stdlib_packages_task
from kinherit.errors import KinheritError
from kinherit.hf_folder import (
    LABELS_FILE,
    check_labels,
    head_modules,
    labels_of,
    library_console,
    load_adapter_classifier,
    load_any_classifier,
    load_classifier,
    load_model_tokenizer,
    max_sequence_length,
    read_config,
)
from kinherit.io import atomic_dir, atomic_file, write_json
from kinherit.metrics.flops import flops_per_token
from kinherit.recycle.config import FinetuneConfig, TaskDataConfig
from kinherit.recycle.distillation import ClassificationDistillation
from kinherit.train.objective import ModelLoss
from kinherit.train.resume_check import check_resume
from kinherit.train.run import fit, resume_checkpoint, training_arguments
from kinherit.train.trainer import KinheritTrainer

DEFAULT_MAX_LENGTH = 128


@dataclass(frozen=True)
class FinetuneResult:
    out: Path
    model_dir: Path
    final_step: int
    accuracy: dict[int, float]  # eval step -> validation accuracy (step 0 = before training)
    flops: dict[int, float]  # eval step -> cumulative training FLOPs, teacher forward passes included

    @property
    def final_accuracy(self) -> float:
        return self.accuracy[max(self.accuracy)]


def load_task(data: TaskDataConfig) -> TaskData:
    if data.task == STDLIB_TASK:
        return stdlib_packages_task(
            data.packages, data.train_per_class, data.val_per_class, data.snippet_lines, data.seed
        )
    return file_task(data.train, data.validation, data.text_field, data.label_field, data.val_fraction, data.seed)


class Encoded(Dataset):
    """Tokenized examples padded to a fixed length: input_ids, attention_mask (L,), labels ()."""

    def __init__(self, split: Split, tokenizer: Any, max_length: int):
        enc = tokenizer(split.texts, truncation=True, max_length=max_length, padding="max_length", return_tensors="pt")
        self.input_ids, self.attention_mask = enc["input_ids"], enc["attention_mask"]  # (N, L)
        self.labels = torch.tensor(split.labels, dtype=torch.long)  # (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[i], "attention_mask": self.attention_mask[i], "labels": self.labels[i]}


def accuracy(prediction: Any) -> dict[str, float]:
    logits = (
        prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    )  # (N, C)
    return {"accuracy": float((np.argmax(logits, -1) == prediction.label_ids).mean())}


def _student(config: FinetuneConfig, labels: list[str], pad_token_id: int) -> torch.nn.Module:
    """Full classifier, a new LoRA adapter on it, or an existing adapter continued on `model.base`."""
    base = Path(config.model.base).resolve()
    if config.model.adapter is not None:
        return load_adapter_classifier(config.model.adapter, "model.adapter", base=base, trainable=True)
    model, _ = load_classifier(base, "model.base", labels, pad_token_id)
    if config.model.lora is None:
        return model
    from peft import LoraConfig, get_peft_model

    lora = config.model.lora
    settings = LoraConfig(
        task_type="SEQ_CLS",
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        modules_to_save=head_modules(model),
    )
    try:
        return get_peft_model(model, settings)
    except ValueError as err:
        raise KinheritError(f"model.lora: {str(err).splitlines()[0]}") from None


def _teacher(config: FinetuneConfig, labels: list[str], vocab_size: int) -> torch.nn.Module | None:
    if config.teacher is None:
        return None
    teacher = load_any_classifier(config.teacher.path, "teacher.path")
    check_labels(labels_of(teacher.config), labels, f"teacher.path {config.teacher.path}")
    if teacher.config.vocab_size != vocab_size:
        raise KinheritError(
            f"teacher.path has a vocabulary of {teacher.config.vocab_size} tokens, the student {vocab_size}; "
            "distillation needs the same tokenizer"
        )
    return teacher


@library_console()  # one bar per run: transformers' bars and known-harmless notices are silenced
def finetune(config: FinetuneConfig, resume: bool = False, callbacks: Sequence[TrainerCallback] = ()) -> FinetuneResult:
    """Fine-tune `config.model` on `config.data` (or continue it from its last checkpoint with `resume`);
    see the module docstring for the outputs."""
    out = Path(config.out)
    checkpoint = resume_checkpoint(out, resume)
    resolved = dump_yaml(config.model_copy(update={"train": config.train_args}))
    if checkpoint is not None:  # hook: kinherit.train.resume_check (the same run, or a one-line refusal)
        check_resume(out, resolved)
    defaults = {
        "eval_strategy": "steps",
        "eval_on_start": True,
        "label_names": ["labels"],
    }  # PeftModel's forward hides the labels
    args = training_arguments({**defaults, **config.train_args}, out, resuming=checkpoint is not None)
    read_config(config.model.base, "model.base")
    task = load_task(config.data)
    tokenizer = load_model_tokenizer(config.model.base, "model.base")
    set_seed(args.seed)
    model = _student(config, task.label_names, tokenizer.pad_token_id)
    limit = max_sequence_length(model.config) or DEFAULT_MAX_LENGTH
    max_length = config.data.max_length or min(DEFAULT_MAX_LENGTH, limit)
    if max_length > limit:
        raise KinheritError(
            f"data.max_length {max_length} exceeds the model's {limit} positions; lower data.max_length"
        )
    teacher = _teacher(config, task.label_names, model.config.vocab_size)
    objective = ModelLoss(normalised_by_step=False, term="ce")
    if teacher is not None:
        teacher = teacher.to(args.device).eval().requires_grad_(False)
        objective = ClassificationDistillation(
            teacher, config.teacher.alpha, config.teacher.temperature, flops_per_token(teacher, max_length)
        )

    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(out / "config.resolved.yaml") as handle:
        handle.write(resolved)
    trainer = KinheritTrainer(
        model=model,
        args=args,
        train_dataset=Encoded(task.train, tokenizer, max_length),
        eval_dataset=Encoded(task.validation, tokenizer, max_length),
        data_collator=default_data_collator,
        compute_metrics=accuracy,
        objective=objective,
        student_flops=flops_per_token(model, max_length),
    )
    adapter = config.model.lora is not None or config.model.adapter is not None
    evaluated = fit(trainer, out, checkpoint, callbacks, perplexity=False)
    model_dir = _save(trainer.model, tokenizer, task.label_names, out, adapter=adapter)
    accuracies = {int(e["step"]): e["eval_accuracy"] for e in evaluated}
    flops = {step: float(trainer.accounting(step)["flops"]) for step in accuracies}
    return FinetuneResult(
        out, model_dir, trainer.state.global_step, dict(sorted(accuracies.items())), dict(sorted(flops.items()))
    )


def _save(model: torch.nn.Module, tokenizer: Any, labels: list[str], out: Path, adapter: bool) -> Path:
    target = out / ("adapter" if adapter else "model")
    with atomic_dir(target) as staging:
        model.save_pretrained(str(staging))
        if adapter:
            write_json(staging / LABELS_FILE, {"labels": labels})
        else:
            tokenizer.save_pretrained(str(staging))
    return target

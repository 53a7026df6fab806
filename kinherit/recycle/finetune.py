"""`kinherit finetune`: sequence-classification fine-tuning (full or LoRA) on `transformers.Trainer`,
optionally distilling from the old fine-tuned model (distillation-based recycling):

    L = (1 − α)·CE(y, p_s) + α·τ²·KL(p_t(·/τ) ‖ p_s(·/τ))          (Qin et al. 2023, Recyclable Tuning)

Output folder:
    config.resolved.yaml   the full config (defaults filled in)
    metrics.jsonl          {step, loss, ce[, kd], learning_rate} and {step, val_loss, val_accuracy};
                           the first evaluation is at step 0, before any update
    model/  or  adapter/   the classifier (+ tokenizer), or the PEFT adapter (+ labels.json); atomic
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator, set_seed

from kinherit.errors import KinheritError
from kinherit.inherit.losses import kd_loss
from kinherit.io import atomic_dir, atomic_file, write_json
from kinherit.config import dump_yaml
from kinherit.recycle.config import FinetuneConfig, TaskDataConfig
from kinherit.data.classification import STDLIB_TASK, Split, TaskData, file_task, stdlib_packages_task
from kinherit.hf_folder import (
    LABELS_FILE,
    head_modules,
    load_adapter_classifier,
    load_any_classifier,
    load_classifier,
    load_model_tokenizer,
    max_sequence_length,
    read_config,
)

DEFAULT_MAX_LENGTH = 128


@dataclass(frozen=True)
class FinetuneResult:
    out: Path
    model_dir: Path
    final_step: int
    accuracy: dict[int, float]  # eval step -> validation accuracy (step 0 = before training)

    @property
    def final_accuracy(self) -> float:
        return self.accuracy[max(self.accuracy)]


def load_task(data: TaskDataConfig) -> TaskData:
    if data.task == STDLIB_TASK:
        return stdlib_packages_task(data.packages, data.train_per_class, data.val_per_class, data.snippet_lines, data.seed)
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


def distill_loss(
    student_logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor, alpha: float, temperature: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(1 − α)·CE(y, softmax(s)) + α·τ²·KL(softmax(t/τ) ‖ softmax(s/τ)), batch means; also the terms.
    student_logits, teacher_logits (B, C); labels (B,)."""
    ce = torch.nn.functional.cross_entropy(student_logits, labels)
    kd = kd_loss(student_logits, teacher_logits, temperature)
    return (1.0 - alpha) * ce + alpha * kd, {"ce": ce, "kd": kd}


class FinetuneTrainer(Trainer):
    """Trainer whose training loss mixes CE with KD from a frozen teacher; logs `ce` and `kd` separately."""

    def __init__(self, *args: Any, teacher: torch.nn.Module | None = None, alpha: float = 0.0, temperature: float = 1.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.teacher, self.alpha, self.temperature = teacher, alpha, temperature
        if teacher is not None:
            self.teacher = teacher.to(self.args.device).eval().requires_grad_(False)
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
        outputs = model(**inputs)
        loss = outputs.loss  # mean CE over the batch
        if model.training:
            terms = {"ce": loss}
            if self.teacher is not None:
                with torch.no_grad():
                    teacher_logits = self.teacher(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits  # (B, C)
                loss, terms = distill_loss(outputs.logits, inputs["labels"], teacher_logits, self.alpha, self.temperature)
            for name, value in terms.items():
                self._sums[name] = self._sums.get(name, 0.0) + value.detach().float()
            self._count += 1
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._count:
            names = sorted(self._sums)
            means = self.accelerator.reduce(torch.stack([self._sums[n] / self._count for n in names]), reduction="mean")
            logs.update(zip(names, means.tolist()))
            self._sums, self._count = {}, 0
            if not math.isfinite(logs["loss"]):
                raise KinheritError(f"the training loss became {logs['loss']} at step {self.state.global_step}; lower train.learning_rate")
        super().log(logs, start_time)


class AccuracyJsonl(TrainerCallback):
    """Append training and evaluation events to `metrics.jsonl` (main process only)."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
        if not state.is_world_process_zero or not logs:
            return
        if "eval_accuracy" in logs:
            event = {"step": state.global_step, "val_loss": logs["eval_loss"], "val_accuracy": logs["eval_accuracy"]}
        elif "loss" in logs:
            keep = ("loss", "ce", "kd", "learning_rate", "grad_norm")
            event = {"step": state.global_step, **{k: logs[k] for k in keep if k in logs}}
        else:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps(event) + "\n")


def accuracy(prediction: Any) -> dict[str, float]:
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions  # (N, C)
    return {"accuracy": float((np.argmax(logits, -1) == prediction.label_ids).mean())}


def training_arguments(config: FinetuneConfig) -> TrainingArguments:
    args = config.train_args
    args.setdefault("eval_strategy", "steps")
    args.setdefault("label_names", ["labels"])  # PeftModel's forward hides them from Trainer's inference
    if not torch.cuda.is_available():
        args.setdefault("use_cpu", True)
    try:
        return TrainingArguments(output_dir=str(Path(config.out) / "checkpoints"), **args)
    except (ValueError, TypeError) as err:
        raise KinheritError(f"invalid train settings: {str(err).splitlines()[0]}") from None


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
        task_type="SEQ_CLS", r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        target_modules=lora.target_modules, modules_to_save=head_modules(model),
    )
    try:
        return get_peft_model(model, settings)
    except ValueError as err:
        raise KinheritError(f"model.lora: {str(err).splitlines()[0]}") from None


def _teacher(config: FinetuneConfig, labels: list[str], vocab_size: int) -> torch.nn.Module | None:
    if config.teacher is None:
        return None
    teacher = load_any_classifier(config.teacher.path, "teacher.path")
    names = [teacher.config.id2label[i] for i in range(teacher.config.num_labels)]
    if names != labels:
        raise KinheritError(f"teacher.path {config.teacher.path} was tuned for labels {names}, but the task has {labels}")
    if teacher.config.vocab_size != vocab_size:
        raise KinheritError(
            f"teacher.path has a vocabulary of {teacher.config.vocab_size} tokens, the student {vocab_size}; "
            "distillation needs the same tokenizer"
        )
    return teacher


def finetune(config: FinetuneConfig, callbacks: tuple[TrainerCallback, ...] = ()) -> FinetuneResult:
    """Fine-tune `config.model` on `config.data`; see the module docstring for the outputs."""
    out = Path(config.out)
    if (out / "metrics.jsonl").exists():
        raise KinheritError(f"{out} already holds a fine-tuning run (metrics.jsonl); choose another out")
    args = training_arguments(config)
    read_config(config.model.base, "model.base")
    task = load_task(config.data)
    tokenizer = load_model_tokenizer(config.model.base, "model.base")
    set_seed(args.seed)
    model = _student(config, task.label_names, tokenizer.pad_token_id)
    limit = max_sequence_length(model.config) or DEFAULT_MAX_LENGTH
    max_length = config.data.max_length or min(DEFAULT_MAX_LENGTH, limit)
    if max_length > limit:
        raise KinheritError(f"data.max_length {max_length} exceeds the model's {limit} positions; lower data.max_length")
    teacher = _teacher(config, task.label_names, model.config.vocab_size)

    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(out / "config.resolved.yaml") as handle:
        handle.write(dump_yaml(config.model_copy(update={"train": config.train_args})))
    trainer = FinetuneTrainer(
        model=model,
        args=args,
        train_dataset=Encoded(task.train, tokenizer, max_length),
        eval_dataset=Encoded(task.validation, tokenizer, max_length),
        data_collator=default_data_collator,
        compute_metrics=accuracy,
        callbacks=[AccuracyJsonl(out / "metrics.jsonl"), *callbacks],
        teacher=teacher,
        alpha=config.teacher.alpha if config.teacher else 0.0,
        temperature=config.teacher.temperature if config.teacher else 1.0,
    )
    accuracies = {0: trainer.evaluate()["eval_accuracy"]}
    trainer.train()
    accuracies.update({int(e["step"]): e["eval_accuracy"] for e in trainer.state.log_history if "eval_accuracy" in e})
    if trainer.state.global_step not in accuracies:
        accuracies[trainer.state.global_step] = trainer.evaluate()["eval_accuracy"]
    model_dir = _save(trainer.model, tokenizer, task.label_names, out, adapter=config.model.lora is not None or config.model.adapter is not None)
    return FinetuneResult(out, model_dir, trainer.state.global_step, dict(sorted(accuracies.items())))


def _save(model: torch.nn.Module, tokenizer: Any, labels: list[str], out: Path, adapter: bool) -> Path:
    target = out / ("adapter" if adapter else "model")
    with atomic_dir(target) as staging:
        model.save_pretrained(str(staging))
        if adapter:
            write_json(staging / LABELS_FILE, {"labels": labels})
        else:
            tokenizer.save_pretrained(str(staging))
    return target

"""Configs of `kinherit finetune` and `kinherit recycle-experiment` (strict keys, errors name the key).

Same conventions as `kinherit.config`: YAML plus `--section.key=value` overrides, unknown keys are
errors, `train:` passes through to `transformers.TrainingArguments` on top of FINETUNE_DEFAULTS.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from kinherit.config import StrictModel, check_training_arguments, describe_validation_error
from kinherit.data.classification import DEFAULT_PACKAGES, STDLIB_TASK

FINETUNE_DEFAULTS: dict[str, Any] = {
    "max_steps": 200,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 128,
    "learning_rate": 1.0e-3,
    "lr_scheduler_type": "linear",
    "warmup_steps": 0,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "logging_steps": 10,
    "eval_steps": 20,
    "save_steps": 100,
    "save_total_limit": 1,
    "seed": 0,
    "report_to": "none",
    "dataloader_num_workers": 0,
}


class TaskDataConfig(StrictModel):
    """The built-in task (`task: stdlib-packages`) or files (`train:`, optional `validation:`)."""

    task: Literal["stdlib-packages"] | None = None
    """The built-in task: which standard-library package a snippet of source code comes from (no download)."""
    train: str | None = None
    """CSV / JSONL with `text_field` and `label_field`, or a `datasets.save_to_disk` folder."""
    validation: str | None = None
    """Held-out data in the same format; default: `val_fraction` of `train` (seeded)."""
    val_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    """Share of `train` held out for validation when `validation` is not given (seeded by `seed`)."""
    text_field: str = "text"
    """Column holding the text."""
    label_field: str = "label"
    """Column holding the label; the sorted distinct training labels are the classes."""
    max_length: int | None = Field(None, ge=2)
    """Tokens per example (truncated, padded); default min(128, the model's positions)."""
    packages: list[str] = Field(default_factory=lambda: list(DEFAULT_PACKAGES))
    """stdlib-packages: the classes, in label order."""
    train_per_class: int = Field(200, ge=1)
    """stdlib-packages: training snippets per class (balanced)."""
    val_per_class: int = Field(50, ge=1)
    """stdlib-packages: validation snippets per class, from other files than the training ones."""
    snippet_lines: int = Field(6, ge=1)
    """stdlib-packages: non-blank source lines per snippet."""
    seed: int = 0
    """Seed of the file shuffle (stdlib-packages) or of the validation split (files)."""

    @model_validator(mode="after")
    def _one_source(self) -> TaskDataConfig:
        if (self.task is None) == (self.train is None):
            raise ValueError(f"set exactly one of data.task ({STDLIB_TASK!r}) or data.train (a file or folder)")
        return self


class LoraSettings(StrictModel):
    """A new PEFT LoRA adapter; the classification head is trained in full (`modules_to_save`)."""

    r: int = Field(8, ge=1)
    """LoRA rank: ΔW = (alpha / r)·B·A with B (out × r), A (r × in)."""
    alpha: float = Field(16.0, gt=0.0)
    """LoRA scaling numerator (peft's `lora_alpha`)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on the adapter's input."""
    target_modules: list[str] | None = None
    """Module names to adapt; default: peft's choice for the model type (e.g. q_proj, v_proj)."""


class FinetuneModelConfig(StrictModel):
    base: str
    """HF model folder: a pre-trained base (fresh head) or a sequence-classification folder (e.g. `kinherit recycle`
    output)."""
    lora: LoraSettings | None = None
    """Train a new LoRA adapter on the frozen base instead of all weights."""
    adapter: str | None = None
    """Continue training this PEFT adapter folder on `base` (e.g. `kinherit recycle --adapter` output)."""

    @model_validator(mode="after")
    def _lora_or_adapter(self) -> FinetuneModelConfig:
        if self.lora is not None and self.adapter is not None:
            raise ValueError("set model.lora (a new adapter) or model.adapter (an existing one), not both")
        return self


class DistillConfig(StrictModel):
    """L = (1 − α)·CE(y, p_s) + α·τ²·KL(p_teacher(·/τ) ‖ p_student(·/τ)) on the task data."""

    path: str
    """The teacher: a fine-tuned sequence-classification folder, or a LoRA adapter folder of `kinherit finetune`."""
    alpha: float = Field(0.8, ge=0.0, le=1.0)
    """α, the weight of the KD term."""
    temperature: float = Field(10.0, gt=0.0)
    """τ, applied to both teacher and student logits."""


class FinetuneConfig(StrictModel):
    """`kinherit finetune`: a sequence classifier on a task, full or LoRA, optionally with a teacher."""

    out: str = "runs/finetune"
    """Output folder: config.resolved.yaml, metrics.jsonl, model/ (or adapter/)."""
    model: FinetuneModelConfig
    """The model to fine-tune (required: model.base)."""
    data: TaskDataConfig
    """The classification task (required: data.task or data.train)."""
    teacher: DistillConfig | None = None
    """Distillation-based recycling: the old fine-tuned model as teacher."""
    train: dict[str, Any] = Field(default_factory=dict)
    """Passed to `transformers.TrainingArguments` on top of kinherit's fine-tuning defaults."""

    @field_validator("train")
    @classmethod
    def _train_keys_exist(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_training_arguments(value)

    @property
    def train_args(self) -> dict[str, Any]:
        return {**FINETUNE_DEFAULTS, **self.train}


VARIANTS = ("scratch", "init", "distill", "combined")


class ExperimentConfig(StrictModel):
    """Fine-tune NEW_BASE four ways on the same data and budget (see docs/recycle.md)."""

    out: str = "runs/recycle-experiment"
    """Output folder: one sub-folder per variant, report.json, report.md, accuracy.png."""
    old_base: str
    """A: the base model the old fine-tuning started from."""
    old_tuned: str | None = None
    """A fine-tuned on the task; None: fine-tune `old_base` first with the `finetune` settings."""
    new_base: str
    """B: the upgraded base (A continually pre-trained, or grown)."""
    growth: str | None = None
    """growth.json (or the folder `kinherit grow` wrote) when NEW_BASE was grown from OLD_BASE and lacks one."""
    scale: float = 1.0
    """λ in B + λ·(A_tuned − A)."""
    adapter: bool = False
    """Recycle a LoRA adapter (finetune.model.lora required) instead of a full fine-tuning delta."""
    variants: list[Literal["scratch", "init", "distill", "combined"]] = Field(default_factory=lambda: list(VARIANTS))
    """Which fine-tunings of B to run; scratch is required (its final accuracy is the target)."""
    finetune: dict[str, Any] = Field(default_factory=dict)
    """The shared `kinherit finetune` sections: data, train, model.lora, teacher.alpha / teacher.temperature."""

    @field_validator("finetune")
    @classmethod
    def _finetune_valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Every variant is this config with other paths: check it before anything runs."""
        unknown = set(value) - {"data", "train", "model", "teacher"}
        if unknown:
            raise ValueError(f"{sorted(unknown)[0]!r} is not a finetune section (data, train, model, teacher)")
        shared = {**value, "model": {**value.get("model", {}), "base": "."}}
        if "teacher" in shared:
            shared["teacher"] = {**shared["teacher"], "path": "."}
        try:
            FinetuneConfig.model_validate(shared)
        except ValidationError as err:
            problem = describe_validation_error(err, FinetuneConfig)
            inner = (
                "finetune." + problem.removeprefix("config key ")
                if problem.startswith("config key ")
                else problem.removeprefix("config: ")
            )
            raise ValueError(inner) from None
        return value

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        if "scratch" not in self.variants:
            raise ValueError("variants must include 'scratch' (its final accuracy is the target)")
        return self

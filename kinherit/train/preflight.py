"""What a run can check before it reads any data: at 1 MB/s a typo found after tokenizing a 2 GB corpus
costs half an hour, so `pretrain` calls `check_before_data` first.

Checked here: the teacher folder (or cache) and the `model.from` folder exist and are what they claim;
data.seq_len fits the positions of the model, of `model.from` and of a same-tokenizer teacher; every
logger in train.report_to is installed; a requested FSDP / DeepSpeed setup can be honoured (`distributed`);
a resume continues the same run (`resume_check`). With `model.from`, the `model:` size keys are the loaded
model's: a size the user gave that differs is refused, and the returned config records the real sizes.
What needs the data (the tokenizer's vocabulary against the models') is checked right after packing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainingArguments

from kinherit.arch.catalog import detect
from kinherit.arch.shape import read_shape
from kinherit.config import MODEL_SIZE_KEYS, RunConfig
from kinherit.errors import KinheritError
from kinherit.hf_folder import check_positions, read_config, require_weights, task_of
from kinherit.inherit.teacher import check_teacher_folder
from kinherit.train.distributed import check_distributed_request

SIZE_KEYS = MODEL_SIZE_KEYS
"""`model:` keys that describe the loaded model when `model.from` is set."""


def check_before_data(config: RunConfig, args: TrainingArguments) -> RunConfig:
    """Refuse, in one line, everything wrong that needs no data; return `config` with `model.from`'s real sizes."""
    config = with_loaded_sizes(config)
    seq_len = config.data.seq_len
    if config.model.from_ is not None:
        check_positions(read_config(config.model.from_, "model.from"), seq_len, "model.from")
    if config.teacher is not None:
        _check_teacher(config, seq_len)
    check_loggers(args.report_to)
    check_distributed_request(args)
    return config


def model_sizes(folder: str | Path) -> dict[str, Any]:
    """The `model:` size keys of the HF model in `folder`, read from its config."""
    hf = read_config(folder, "model.from")
    require_weights(folder, "model.from")
    try:
        family, _ = detect(hf)
        shape, keys = read_shape(family, hf), family.config
    except KinheritError:  # a family kinherit cannot grow still trains: read transformers' standard names
        sizes = {
            "hidden_size": hf.hidden_size,
            "num_layers": hf.num_hidden_layers,
            "num_heads": hf.num_attention_heads,
            "num_kv_heads": getattr(hf, "num_key_value_heads", None),
            "intermediate_size": getattr(hf, "intermediate_size", None),
            "num_experts": None,
            "num_experts_per_tok": None,
        }
    else:
        sizes = {
            **shape.model_sizes(),
            "num_experts": getattr(hf, keys.experts, None) if keys.experts else None,
            "num_experts_per_tok": getattr(hf, keys.experts_per_token, None) if keys.experts_per_token else None,
        }
    return {
        **sizes,
        "tie_word_embeddings": bool(getattr(hf, "tie_word_embeddings", True)),
        "max_position_embeddings": getattr(hf, "max_position_embeddings", None) or getattr(hf, "n_positions", None),
    }


def with_loaded_sizes(config: RunConfig) -> RunConfig:
    """With `model.from`: refuse a size key the user set to another value than the loaded model's, and fill
    every size key with the loaded model's value (so `config.resolved.yaml` records what was trained)."""
    model = config.model
    if model.from_ is None:
        return config
    real = model_sizes(model.from_)
    given = {key: getattr(model, key) for key in SIZE_KEYS if key in model.model_fields_set}
    wrong = [f"model.{key}={value} (the model has {real[key]})" for key, value in given.items() if value != real[key]]
    if wrong:
        raise KinheritError(
            f"model.from {model.from_} sets the model's sizes, but the config asks for {', '.join(wrong)}; remove "
            "those keys (on the command line: "
            f"--unset={','.join(f'model.{key}' for key, value in given.items() if value != real[key])}), or grow "
            "the model first (kinherit grow) to change its shape"
        )
    return config.model_copy(update={"model": model.model_copy(update=real)})


def _check_teacher(config: RunConfig, seq_len: int) -> None:
    """The teacher's checks that need no data (`inherit.teacher.check_teacher_folder`); with another tokenizer, its
    task and length are checked with the data's tokenizer (causal LMs, fast tokenizer, alignment)."""
    teacher = config.teacher
    if teacher.cache is not None:
        if not (Path(teacher.cache) / "meta.json").is_file():
            raise KinheritError(
                f"teacher.cache {teacher.cache} is not a teacher cache (no meta.json); build one with kinherit "
                "cache-teacher"
            )
        return
    if teacher.cross_tokenizer is not None:
        check_teacher_folder(teacher.path)
        return
    student_task = task_of(read_config(config.model.from_)) if config.model.from_ else _family_task(config.model.family)
    check_teacher_folder(teacher.path, student_task, seq_len)


def _family_task(family: str) -> str:
    from kinherit.arch.catalog import FAMILIES

    return FAMILIES.lookup(family).task


def check_loggers(report_to: Any) -> None:
    """Every logger named in train.report_to must be importable (transformers would fail only when training starts)."""
    from transformers.integrations.integration_utils import (
        INTEGRATION_TO_CALLBACK,
        get_available_reporting_integrations,
    )

    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    names = [n for n in names if n not in ("none", "all")]
    available = set(get_available_reporting_integrations())
    for name in names:
        if name not in INTEGRATION_TO_CALLBACK:
            raise KinheritError(
                f"train.report_to: unknown logger {name!r}; choose from "
                f"{', '.join(sorted(INTEGRATION_TO_CALLBACK))} or none"
            )
        if name not in available:
            raise KinheritError(
                f"train.report_to: the logger {name!r} is not installed; pip install it or remove it from "
                "train.report_to"
            )

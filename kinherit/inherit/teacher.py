"""The teacher: checked against the student up front (folder, task, vocabulary), its weights loaded on first use.

Student and teacher may differ in depth, width and family, but must tokenize identically: the tokenizers'
vocabularies, merges and added tokens must be equal. Their embedding matrices may still be padded to
different sizes; KD then uses the first `shared_vocab = len(tokenizer)` logits of both, the padding rows
being ids no tokenizer ever emits. With `teacher.cross_tokenizer` set, the vocabularies may differ
(`kinherit.kd.cross_tokenizer`); the teacher then needs a fast tokenizer, and `shared_vocab` is its own size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, PretrainedConfig, PreTrainedModel

from kinherit.errors import KinheritError
from kinherit.hf_folder import check_positions, load_lm, read_config, require_weights, task_of, vocabulary_signature
from kinherit.kd.cross_tokenizer.method import METHODS
from kinherit.metrics.flops import FlopsPerToken, flops_per_token


@dataclass(frozen=True)
class TeacherSpec:
    """A validated teacher folder; `load()` reads the weights, `flops` needs none."""

    path: Path
    config: PretrainedConfig
    shared_vocab: int
    flops: FlopsPerToken

    def load(self) -> PreTrainedModel:
        """The teacher in eval mode, frozen."""
        model = load_lm(self.path, "teacher.path")
        model.eval().requires_grad_(False)
        return model


def _meta_model(config: PretrainedConfig) -> torch.nn.Module:
    auto = AutoModelForMaskedLM if task_of(config) == "masked" else AutoModelForCausalLM
    with torch.device("meta"):
        return auto.from_config(config)


def check_teacher_folder(path: str | Path, task: str | None = None, seq_len: int | None = None) -> PretrainedConfig:
    """The teacher's checks that need no data (`kinherit.train.preflight` runs them before the corpus is read): the
    folder exists and holds a model config and weights, of a `task` LM (None: not checked) whose positions hold
    `seq_len` tokens (None: not checked; a teacher with another tokenizer reads its own length). Its config."""
    path = Path(path)
    if not path.is_dir():
        raise KinheritError(
            f"teacher.path {path} not found (resolved against {Path.cwd()}); point it at a trained model folder "
            "(e.g. runs/small/model)"
        )
    config = read_config(path, "teacher.path")
    require_weights(path, "teacher.path")
    if task is not None and task_of(config) != task:
        raise KinheritError(
            f"teacher {path} is a {task_of(config)} LM ({config.model_type}) but the student a {task} LM; "
            "KI needs the same pre-training task"
        )
    if seq_len is not None:
        check_positions(config, seq_len, f"teacher.path {path}")
    return config


def inspect_teacher(
    path: str | Path,
    tokenizer: Any,
    seq_len: int,
    task: str,
    top_k: int | None = None,
    top_k_key: str = "teacher.top_k",
    cross_tokenizer: bool = False,
) -> TeacherSpec:
    """Check that the teacher at `path` can teach a `task` student using `tokenizer` (`check_teacher_folder`, then
    the tokenizer), keeping its `top_k` most likely tokens (≤ the shared vocabulary); else a one-line
    `KinheritError` (naming `top_k_key`). `cross_tokenizer`: the vocabularies may differ (the alignment and `top_k`
    are checked by the caller) and the teacher reads its own length.

    (The student's own embedding holds every token id: `kinherit.arch.build.build_model` checks that.)
    """
    path = Path(path)
    config = check_teacher_folder(path, task, None if cross_tokenizer else seq_len)
    if not (path / "tokenizer.json").is_file():
        if cross_tokenizer:
            raise KinheritError(
                f"teacher {path} has no tokenizer.json: teacher.cross_tokenizer aligns the two tokenizations by "
                "character offsets, which only a fast tokenizer (tokenizer.json) gives; save the teacher's fast "
                "tokenizer there"
            )
        raise KinheritError(
            f"teacher {path} has no tokenizer.json; KI needs the teacher's tokenizer to check the vocabulary"
        )
    from kinherit.data.tokenizer import load_tokenizer

    teacher_tokenizer = load_tokenizer(path)
    if cross_tokenizer:
        return TeacherSpec(path, config, len(teacher_tokenizer), flops_per_token(_meta_model(config), seq_len))
    if vocabulary_signature(teacher_tokenizer) != vocabulary_signature(tokenizer):
        raise KinheritError(
            f"teacher tokenizer ({len(teacher_tokenizer)} tokens, {path}) differs from the student's "
            f"({len(tokenizer)} tokens, {tokenizer.name_or_path}); KI needs a shared vocabulary: "
            f"train the teacher on the same data.tokenizer or set data.tokenizer.path to {path}, "
            f"or set teacher.cross_tokenizer ({', '.join(METHODS)}) to align the two tokenizations"
        )
    shared = len(tokenizer)
    if config.vocab_size < shared:
        raise KinheritError(
            f"teacher {path}: its embedding holds {config.vocab_size} rows but its tokenizer has {shared} tokens"
        )
    if top_k is not None and top_k > shared:
        raise KinheritError(
            f"{top_k_key} {top_k} exceeds the vocabulary of {shared} tokens; choose K ≤ {shared} (10 is enough per "
            "the KI paper)"
        )
    return TeacherSpec(path, config, shared, flops_per_token(_meta_model(config), seq_len))

"""The online cross-tokenizer dataset: student blocks with their alignment to the teacher's tokenization,
and the aligner that builds it for a teacher folder."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from kinherit.data.dataset import PackedBlocks
from kinherit.data.tokenizer import load_tokenizer
from kinherit.errors import KinheritError
from kinherit.hf_folder import max_sequence_length, task_of
from kinherit.inherit.teacher import TeacherSpec
from kinherit.kd.alignment import Aligner
from kinherit.kd.cross_tokenizer.targets import SharedVocab


class CrossTokenizerBlocks(Dataset):
    """`PackedBlocks` items plus their alignment with the teacher's tokenization (online teacher).

    Every item has fixed shapes: the teacher's input is right-padded to `aligner.max_len`.
    """

    def __init__(self, blocks: PackedBlocks, aligner: Aligner):
        if blocks.masking is not None:
            raise KinheritError(
                "teacher.cross_tokenizer supports causal-LM students only (the student's masked input has no text)"
            )
        self.blocks, self.aligner = blocks, aligner

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        item = self.blocks[index]
        aligned = self.aligner.align(item["input_ids"].numpy())
        length = self.aligner.max_len
        teacher_ids = np.zeros(length, dtype=np.int64)
        teacher_ids[: len(aligned.teacher_ids)] = aligned.teacher_ids
        mask = np.zeros(length, dtype=np.int64)
        mask[: len(aligned.teacher_ids)] = 1
        return {
            **item,
            "xt_teacher_ids": torch.from_numpy(teacher_ids),  # (L,)
            "xt_teacher_mask": torch.from_numpy(mask),  # (L,)
            "xt_span_start": torch.from_numpy(aligned.span_start),  # (T,)
            "xt_span_teacher": torch.from_numpy(aligned.span_teacher),  # (T, 2)
            "xt_boundary": torch.from_numpy(aligned.boundary),  # (T,)
        }


def check_text(aligner: Aligner, blocks: PackedBlocks) -> None:
    """Refuse, before training, a teacher tokenizer that would not keep the text of `blocks`' file as is."""
    aligner.check_text(np.memmap(blocks.path, dtype=blocks.dtype, mode="r")[: blocks.num_blocks * blocks.seq_len])


def teacher_length(teacher_config: Any, seq_len: int) -> int:
    """Teacher tokens per student block: its position limit, at most 2·seq_len (a byte-level tokenizer of a
    similar size needs about as many tokens as the student for the same text)."""
    limit = max_sequence_length(teacher_config)
    return min(limit, 2 * seq_len) if limit else 2 * seq_len


def build_aligner(spec: TeacherSpec, tokenizer: Any, train: PackedBlocks) -> tuple[Aligner, SharedVocab, int]:
    """The aligner of `train`'s student blocks with `spec`'s tokenizer (checked on all of their text), the shared
    vocabulary and the teacher length."""
    if task_of(spec.config) != "causal":
        raise KinheritError(f"teacher {spec.path} is a masked LM; teacher.cross_tokenizer needs a causal-LM teacher")
    teacher_tokenizer = load_tokenizer(spec.path)
    length = teacher_length(spec.config, train.seq_len)
    aligner = Aligner(tokenizer, teacher_tokenizer, length)
    check_text(aligner, train)
    return aligner, SharedVocab.of(aligner, tokenizer, teacher_tokenizer), length

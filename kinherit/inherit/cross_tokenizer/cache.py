"""Offline cross-tokenizer teacher cache: the targets of both methods for every training block, computed once.

Layout (rows in the student's packed training stream, as in `kinherit.inherit.cache`: block b owns rows
[b·seq_len, (b+1)·seq_len)):
    span_start.bin   int32 (rows,): on a row ending an aligned span, the span's first row within the block; −1 elsewhere
    teacher_ll.bin    float32 (rows,): there, the teacher's log-likelihood of the span's text (ALM)
    at_boundary.bin   uint8 (rows,): 1 where the row ends at a common token boundary
    log_probs.bin     float16 (rows, K): there, the teacher's top-K next-token log-probabilities over the shared
                      vocabulary (restricted for `shared_vocab` and `alm`, bucketed for `shared_prefix`: meta
                      `targets`), renormalised over K, at τ = 1
    indices.bin       uint16 / int32 (rows, K): their student token ids
    meta.json         as the same-tokenizer cache, plus cross_tokenizer, teacher_len, the shared vocabulary
                      (student and teacher id pairs) and the digest of the teacher's tokenizer.json
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from transformers import default_data_collator

from kinherit.config import RunConfig
from kinherit.data.dataset import PackedBlocks
from kinherit.data.packing import PackedCorpus, prepare_corpus
from kinherit.data.tokenizer import load_tokenizer, separator_id
from kinherit.errors import KinheritError
from kinherit.inherit.cache import (
    META,
    TeacherCache,
    _check_causal,
    _teacher_identity,
    check_cache_sizes,
    default_cache_path,
    open_cache,
    training_blocks,
)
from kinherit.inherit.cross_tokenizer.blocks import CrossTokenizerBlocks, build_aligner
from kinherit.inherit.teacher import _meta_model, inspect_teacher
from kinherit.io import atomic_dir, write_json
from kinherit.kd.alignment import token_bytes
from kinherit.kd.cross_tokenizer.method import METHODS
from kinherit.kd.cross_tokenizer.targets import SharedVocab, online_targets
from kinherit.metrics.flops import FlopsPerToken, flops_per_token

FORMAT = 2
"""2: span_start.bin (was chunk_start.bin), one shared-vocabulary entry per string (byte-fallback duplicates
grouped)."""
FILES = {
    "span_start": ("span_start.bin", np.int32),
    "teacher_ll": ("teacher_ll.bin", np.float32),
    "at_boundary": ("at_boundary.bin", np.uint8),
}


@dataclass(frozen=True)
class CrossTokenizerCache:
    """A cross-tokenizer cache folder, checked against the run's data."""

    base: TeacherCache

    @property
    def top_k(self) -> int:
        return self.base.top_k

    @property
    def teacher_len(self) -> int:
        return self.base.meta["teacher_len"]

    @property
    def teacher_flops(self) -> FlopsPerToken:
        teacher = self.base.meta["teacher"]
        return FlopsPerToken(teacher["forward_flops_per_token"], self.teacher_len, teacher["matmul_params"])

    def shared_vocab(self, tokenizer: Any) -> SharedVocab:
        """The stored shared vocabulary, with the student's (`tokenizer`'s) buckets."""
        return SharedVocab.stored(
            self.base.meta["shared_vocab"], token_bytes(tokenizer, "student"), separator_id(tokenizer)
        )

    def arrays(self) -> dict[str, np.memmap]:
        """Read-only memmaps: the three per-row files and the (rows, K) log_probs / indices."""
        rows = self.base.rows
        out = {
            name: np.memmap(self.base.root / file, dtype=dtype, mode="r", shape=(rows,))
            for name, (file, dtype) in FILES.items()
        }
        out["log_probs"], out["indices"] = self.base.arrays()
        return out


def _tokenizer_digest(path: Path) -> str:
    return hashlib.sha256((path / "tokenizer.json").read_bytes()).hexdigest()[:16]


def build_cross_cache(
    teacher_dir: str | Path,
    config: RunConfig,
    method: str,
    top_k: int,
    out: str | Path | None = None,
    batch_size: int = 32,
) -> CrossTokenizerCache:
    """Run a teacher with another tokenizer once over every training block of `config.data`; store the targets of
    `method` (teacher.cross_tokenizer; the span log-likelihoods of alm are always stored)."""
    check_cache_sizes(top_k, batch_size)
    kind = METHODS.lookup(method)
    corpus = prepare_corpus(config.data)
    tokenizer = load_tokenizer(corpus.tokenizer_dir)
    seq_len = config.data.seq_len
    _check_causal(Path(teacher_dir))
    spec = inspect_teacher(teacher_dir, tokenizer, seq_len, task="causal", cross_tokenizer=True)
    blocks = training_blocks(corpus, seq_len)
    aligner, shared, length = build_aligner(spec, tokenizer, blocks)
    if top_k > len(shared):
        raise KinheritError(
            f"--top-k {top_k} exceeds the {len(shared)} tokens the two vocabularies share; choose K ≤ {len(shared)}"
        )
    default = default_cache_path(spec.path, corpus, seq_len, top_k)
    out = Path(out) if out is not None else default.with_name(f"{default.name}-{method}")
    index_dtype = np.dtype(np.uint16 if len(tokenizer) <= 1 << 16 else np.int32)
    aligned = CrossTokenizerBlocks(blocks, aligner)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = spec.load().to(device)
    rows = len(blocks) * seq_len
    with atomic_dir(out) as staging:
        per_row = {
            name: np.memmap(staging / file, dtype=dtype, mode="w+", shape=(rows,))
            for name, (file, dtype) in FILES.items()
        }
        log_probs = np.memmap(staging / "log_probs.bin", dtype=np.float16, mode="w+", shape=(rows, top_k))
        indices = np.memmap(staging / "indices.bin", dtype=index_dtype, mode="w+", shape=(rows, top_k))
        for start in range(0, len(blocks), batch_size):
            stop = min(start + batch_size, len(blocks))
            batch = {
                k: v.to(device) for k, v in default_data_collator([aligned[i] for i in range(start, stop)]).items()
            }
            with torch.inference_mode():
                logits = model(input_ids=batch["xt_teacher_ids"], attention_mask=batch["xt_teacher_mask"]).logits
                targets = online_targets(logits, batch, shared, top_k, buckets=kind.bucketed)
            rows_of = slice(start * seq_len, stop * seq_len)
            per_row["span_start"][rows_of] = targets.span_start.reshape(-1).cpu().numpy()
            per_row["teacher_ll"][rows_of] = targets.teacher_ll.reshape(-1).float().cpu().numpy()
            per_row["at_boundary"][rows_of] = targets.at_boundary.reshape(-1).cpu().numpy()
            log_probs[rows_of] = targets.top.log_probs.reshape(-1, top_k).cpu().numpy().astype(np.float16)
            indices[rows_of] = targets.top.indices.reshape(-1, top_k).cpu().numpy().astype(index_dtype)
        for array in (*per_row.values(), log_probs, indices):
            array.flush()
        del per_row, log_probs, indices
        write_json(
            staging / META,
            {
                "format": FORMAT,
                "cross_tokenizer": True,
                "targets": kind.cached_targets,
                "corpus_fingerprint": corpus.fingerprint,
                "seq_len": seq_len,
                "num_blocks": len(blocks),
                "top_k": top_k,
                "vocab": len(tokenizer),
                "index_dtype": index_dtype.name,
                "teacher_len": length,
                "shared_vocab": [shared.student_ids.tolist(), shared.teacher_ids.tolist()],
                "teacher": {
                    **_teacher_identity(spec),
                    "tokenizer_digest": _tokenizer_digest(spec.path),
                    "forward_flops_per_token": flops_per_token(_meta_model(spec.config), length).forward,
                },
            },
        )
    return open_cross_cache(out, corpus, seq_len, method)


def open_cross_cache(
    path: str | Path, corpus: PackedCorpus, seq_len: int, method: str, top_k: int | None = None
) -> CrossTokenizerCache:
    """The cross-tokenizer cache at `path`, checked against the run's data, `top_k` and the targets `method` needs."""
    base = open_cache(path, corpus, seq_len, top_k, cross_tokenizer=True, format_version=FORMAT)
    stored = base.meta["targets"]
    if not METHODS.lookup(method).reads(stored):
        raise KinheritError(
            f"teacher.cache {path} holds {stored} boundary targets, not those of teacher.cross_tokenizer: {method}; "
            f"build one with kinherit cache-teacher --cross-tokenizer {method}"
        )
    return CrossTokenizerCache(base)


class CachedCrossTokenizerBlocks(Dataset):
    """`PackedBlocks` items plus their cached cross-tokenizer targets (see the module docstring)."""

    def __init__(self, blocks: PackedBlocks, cache: CrossTokenizerCache, top_k: int):
        if blocks.masking is not None:
            raise KinheritError("teacher.cross_tokenizer supports causal-LM students only")
        self.blocks, self.cache, self.top_k = blocks, cache, top_k
        self._arrays: dict[str, np.memmap] | None = None

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self._arrays is None:  # opened lazily so the dataset pickles cheaply into workers
            self._arrays = self.cache.arrays()
        a = self._arrays
        start = (int(index) % len(self.blocks)) * self.blocks.seq_len
        rows = slice(start, start + self.blocks.seq_len)
        return {
            **self.blocks[index],
            "xt_span_start": torch.from_numpy(a["span_start"][rows].astype(np.int64)),  # (T,)
            "xt_teacher_ll": torch.from_numpy(np.array(a["teacher_ll"][rows])),  # (T,) fp32
            "xt_at_boundary": torch.from_numpy(a["at_boundary"][rows].astype(np.int64)),  # (T,)
            "xt_log_probs": torch.from_numpy(np.array(a["log_probs"][rows, : self.top_k])),  # (T, k) fp16
            "xt_indices": torch.from_numpy(a["indices"][rows, : self.top_k].astype(np.int64)),  # (T, k)
        }

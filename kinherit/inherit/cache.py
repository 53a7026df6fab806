"""Offline teacher cache: the teacher's top-K next-token distribution for every training token, computed once.

Layout of a cache folder:
    log_probs.bin   float16 (num_blocks·seq_len, K): log-probabilities of the K most likely tokens, renormalised over K
    indices.bin     uint16 (vocabulary ≤ 65536) or int32 (num_blocks·seq_len, K): their token ids, most likely first
    meta.json       corpus fingerprint, seq_len, K, vocabulary, teacher identity and forward FLOPs per token

Row r belongs to token r of the packed training stream: block b (the student's `PackedBlocks` index modulo the
number of blocks) owns rows [b·seq_len, (b+1)·seq_len). Causal LM only: a causal block's teacher output is the
same in every epoch, whereas a masked-LM student corrupts each block differently per epoch (and the teacher
must see the same corrupted input), so masked-LM students use an online teacher. The stored log-probabilities
are taken at τ = 1; any student temperature is applied at training time (see `losses`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from kinherit.config import RunConfig
from kinherit.data.dataset import PackedBlocks
from kinherit.data.packing import PackedCorpus, prepare_corpus
from kinherit.data.tokenizer import load_tokenizer
from kinherit.errors import KinheritError
from kinherit.inherit.losses import TopK
from kinherit.inherit.teacher import TeacherSpec, inspect_teacher
from kinherit.io import atomic_dir, write_json
from kinherit.metrics.flops import FlopsPerToken
from kinherit.hf_folder import read_config, task_of

FORMAT = 1
LOG_PROBS, INDICES, META = "log_probs.bin", "indices.bin", "meta.json"
CACHE_KEYS = ("teacher_log_probs", "teacher_indices")
"""Extra batch fields of a cached-teacher dataset, consumed (popped) by the KI objective (`objective.KnowledgeInheritance`)."""


@dataclass(frozen=True)
class TeacherCache:
    root: Path
    meta: dict[str, Any]

    @property
    def top_k(self) -> int:
        return self.meta["top_k"]

    @property
    def rows(self) -> int:
        return self.meta["num_blocks"] * self.meta["seq_len"]

    @property
    def shared_vocab(self) -> int:
        return self.meta["vocab"]

    @property
    def teacher_flops(self) -> FlopsPerToken:
        teacher = self.meta["teacher"]
        return FlopsPerToken(teacher["forward_flops_per_token"], self.meta["seq_len"], teacher["matmul_params"])

    def arrays(self) -> tuple[np.memmap, np.memmap]:
        """Read-only (log_probs, indices), each (rows, K)."""
        shape = (self.rows, self.top_k)
        log_probs = np.memmap(self.root / LOG_PROBS, dtype=np.float16, mode="r", shape=shape)
        indices = np.memmap(self.root / INDICES, dtype=np.dtype(self.meta["index_dtype"]), mode="r", shape=shape)
        return log_probs, indices


def _teacher_digest(path: Path) -> str:
    """sha256 over the teacher's config and weight files (its identity in meta.json)."""
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if file.name == "config.json" or file.suffix in {".safetensors", ".bin"}:
            digest.update(file.name.encode())
            with file.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 24), b""):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def default_cache_path(teacher: Path, corpus: PackedCorpus, seq_len: int, top_k: int) -> Path:
    return teacher.resolve().parent / f"teacher-cache-{corpus.fingerprint}-s{seq_len}-k{top_k}"


def check_cache_sizes(top_k: int, batch_size: int) -> None:
    """`cache-teacher`'s --top-k and --batch-size must be positive."""
    if top_k < 1:
        raise KinheritError(f"--top-k must be ≥ 1, got {top_k}")
    if batch_size < 1:
        raise KinheritError(f"--batch-size must be ≥ 1, got {batch_size}")


def training_blocks(corpus: PackedCorpus, seq_len: int) -> PackedBlocks:
    """The corpus's training blocks, refused when there is not one full block to cache."""
    blocks = PackedBlocks(corpus.train_path, corpus.dtype, seq_len)
    if len(blocks) == 0:
        raise KinheritError(f"the training split holds fewer than data.seq_len={seq_len} tokens; nothing to cache")
    return blocks


def build_cache(teacher_dir: str | Path, config: RunConfig, top_k: int, out: str | Path | None = None, batch_size: int = 32) -> TeacherCache:
    """Run the teacher once over every training block of `config.data` and store its top-K outputs."""
    check_cache_sizes(top_k, batch_size)
    corpus = prepare_corpus(config.data)
    tokenizer = load_tokenizer(corpus.tokenizer_dir)
    seq_len = config.data.seq_len
    _check_causal(Path(teacher_dir))
    spec = inspect_teacher(teacher_dir, tokenizer, seq_len, task="causal", top_k=top_k, top_k_key="--top-k")
    blocks = training_blocks(corpus, seq_len)
    out = Path(out) if out is not None else default_cache_path(spec.path, corpus, seq_len, top_k)
    index_dtype = np.dtype(np.uint16 if spec.shared_vocab <= 1 << 16 else np.int32)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = spec.load().to(device)
    with atomic_dir(out) as staging:
        shape = (len(blocks) * seq_len, top_k)
        log_probs = np.memmap(staging / LOG_PROBS, dtype=np.float16, mode="w+", shape=shape)
        indices = np.memmap(staging / INDICES, dtype=index_dtype, mode="w+", shape=shape)
        for start in range(0, len(blocks), batch_size):
            stop = min(start + batch_size, len(blocks))
            input_ids = torch.stack([blocks[i]["input_ids"] for i in range(start, stop)]).to(device)  # (B, T)
            with torch.inference_mode():
                logits = model(input_ids=input_ids).logits[..., : spec.shared_vocab]  # (B, T, V)
            top = TopK.from_logits(logits, top_k)  # (B, T, K)
            rows = slice(start * seq_len, stop * seq_len)
            log_probs[rows] = top.log_probs.reshape(-1, top_k).cpu().numpy().astype(np.float16)
            indices[rows] = top.indices.reshape(-1, top_k).cpu().numpy().astype(index_dtype)
        log_probs.flush(), indices.flush()
        del log_probs, indices
        write_json(staging / META, {
            "format": FORMAT,
            "corpus_fingerprint": corpus.fingerprint,
            "seq_len": seq_len,
            "num_blocks": len(blocks),
            "top_k": top_k,
            "vocab": spec.shared_vocab,
            "index_dtype": index_dtype.name,
            "teacher": _teacher_identity(spec),
        })
    return open_cache(out, corpus, seq_len)


def _check_causal(path: Path) -> None:
    if not path.is_dir():
        raise KinheritError(f"--teacher {path} not found; point it at a trained model folder")
    if task_of(read_config(path, "--teacher")) != "causal":
        raise KinheritError(
            f"teacher {path} is a masked LM; the cache serves causal LMs only, because a masked-LM student corrupts each "
            "block differently every epoch and the teacher must see that same input: use an online teacher (teacher.path)"
        )


def _teacher_identity(spec: TeacherSpec) -> dict[str, Any]:
    return {
        "path": str(spec.path.resolve()),
        "model_type": spec.config.model_type,
        "digest": _teacher_digest(spec.path),
        "forward_flops_per_token": spec.flops.forward,
        "matmul_params": spec.flops.matmul_params,
    }


def open_cache(path: str | Path, corpus: PackedCorpus, seq_len: int, top_k: int | None = None, cross_tokenizer: bool = False,
               format_version: int = FORMAT) -> TeacherCache:
    """The cache at `path`, checked against the run's data (corpus fingerprint, seq_len), `top_k`, its kind
    (same-tokenizer, or `cross_tokenizer` built by `cache-teacher --cross-tokenizer`) and its `format_version`."""
    path = Path(path)
    if not (path / META).is_file():
        raise KinheritError(f"teacher.cache {path} is not a teacher cache (no {META}); build one with kinherit cache-teacher")
    cache = TeacherCache(path, json.loads((path / META).read_text()))
    if bool(cache.meta.get("cross_tokenizer")) != cross_tokenizer:
        raise KinheritError(
            f"teacher.cache {path} was built for a teacher with another tokenizer (cache-teacher --cross-tokenizer): set teacher.cross_tokenizer"
            if not cross_tokenizer else
            f"teacher.cache {path} is a same-tokenizer cache; with teacher.cross_tokenizer build one with kinherit cache-teacher --cross-tokenizer"
        )
    if cache.meta.get("format") != format_version:
        raise KinheritError(
            f"teacher.cache {path} has format {cache.meta.get('format')}, this kinherit reads format {format_version}: "
            "rebuild it with kinherit cache-teacher"
        )
    built_for = (cache.meta.get("corpus_fingerprint"), cache.meta.get("seq_len"))
    if built_for != (corpus.fingerprint, seq_len):
        raise KinheritError(
            f"teacher.cache {path} was built for different data (corpus {built_for[0]}, seq_len {built_for[1]}) than this run "
            f"(corpus {corpus.fingerprint}, seq_len {seq_len}): fingerprint mismatch; rebuild it with kinherit cache-teacher --config"
        )
    if top_k is not None and top_k > cache.top_k:
        raise KinheritError(f"teacher.top_k {top_k} exceeds the {cache.top_k} tokens stored in teacher.cache {path}")
    return cache


class CachedTeacherBlocks(Dataset):
    """`PackedBlocks` items plus the cached teacher top-K of their tokens: (T, k) float16 and int64."""

    def __init__(self, blocks: PackedBlocks, cache: TeacherCache, top_k: int):
        if blocks.masking is not None:
            raise KinheritError("teacher.cache serves causal-LM students only; a masked-LM student needs teacher.path")
        self.blocks, self.cache, self.top_k = blocks, cache, top_k
        self._arrays: tuple[np.memmap, np.memmap] | None = None

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self._arrays is None:  # opened lazily so the dataset pickles cheaply into workers
            self._arrays = self.cache.arrays()
        log_probs, indices = self._arrays
        start = (int(index) % len(self.blocks)) * self.blocks.seq_len
        rows = slice(start, start + self.blocks.seq_len)
        return {
            **self.blocks[index],
            CACHE_KEYS[0]: torch.from_numpy(np.array(log_probs[rows, : self.top_k])),  # (T, k) fp16
            CACHE_KEYS[1]: torch.from_numpy(indices[rows, : self.top_k].astype(np.int64)),  # (T, k)
        }

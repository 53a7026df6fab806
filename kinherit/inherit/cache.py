"""Offline teacher cache: the teacher's top-K next-token distribution for every training token, computed once.

Layout of a top-K cache folder:
    log_probs.bin   float16 (num_blocks·seq_len, K): log-probabilities of the K most likely tokens, renormalised over K
    indices.bin     uint16 (vocabulary ≤ 65536) or int32 (num_blocks·seq_len, K): their token ids, most likely first
    meta.json       corpus fingerprint, seq_len, K, vocabulary, teacher identity and forward FLOPs per token

A top-p (nucleus) cache (`top_p` in meta.json) keeps, per token, the k ≤ K most likely tokens whose probability
reaches p (the smallest such set, cut at K: the byte budget), renormalised over those k; its rows have k entries each:
    log_probs.bin, indices.bin   flat (Σk,): the rows one after another
    counts.bin      uint8 (K < 256) or uint16 (num_blocks·seq_len,): k of each row
    offsets.bin     int64 (num_blocks + 1,): where each block's rows start in the flat files
A block is served as (seq_len, K) with rows padded by `PAD_LOG_PROB` (−∞, probability 0) and index 0; every KD
loss gives padding exactly nothing (`losses`), so the loss is that of the stored k-token distributions.

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
from accelerate import PartialState
from torch import Tensor
from torch.utils.data import Dataset

from kinherit.config import RunConfig
from kinherit.data.dataset import PackedBlocks
from kinherit.data.packing import PackedCorpus, prepare_corpus
from kinherit.data.tokenizer import load_tokenizer
from kinherit.errors import KinheritError
from kinherit.hf_folder import read_config, task_of
from kinherit.inherit.parts import PartWriter, join_parts, shared_staging
from kinherit.inherit.teacher import TeacherSpec, inspect_teacher
from kinherit.io import write_json
from kinherit.kd.losses import TopK
from kinherit.metrics.flops import FlopsPerToken

FORMAT = 1
LOG_PROBS, INDICES, META = "log_probs.bin", "indices.bin", "meta.json"
COUNTS, OFFSETS = "counts.bin", "offsets.bin"
PAD_LOG_PROB = float("-inf")
"""The stored log-probability of a padding entry of a top-p row (probability 0)."""
CACHE_KEYS = ("teacher_log_probs", "teacher_indices")
"""Extra batch fields of a cached-teacher dataset, consumed (popped) by the KI objective
(`objective.KnowledgeInheritance`)."""


@dataclass(frozen=True)
class TeacherCache:
    root: Path
    meta: dict[str, Any]

    @property
    def top_k(self) -> int:
        return self.meta["top_k"]

    @property
    def top_p(self) -> float | None:
        return self.meta.get("top_p")

    @property
    def rows(self) -> int:
        return self.meta["num_blocks"] * self.meta["seq_len"]

    @property
    def bytes_per_token(self) -> float:
        """The cache's size on disk (every file but meta.json) per training token."""
        return sum(file.stat().st_size for file in self.root.glob("*.bin")) / self.rows

    @property
    def shared_vocab(self) -> int:
        return self.meta["vocab"]

    @property
    def teacher_flops(self) -> FlopsPerToken:
        teacher = self.meta["teacher"]
        return FlopsPerToken(teacher["forward_flops_per_token"], self.meta["seq_len"], teacher["matmul_params"])

    def arrays(self) -> tuple[np.memmap, np.memmap]:
        """Read-only (log_probs, indices): each (rows, K) for a top-K cache, flat (Σk,) for a top-p cache."""
        shape = (self.rows, self.top_k) if self.top_p is None else (self.meta["kept"],)
        log_probs = np.memmap(self.root / LOG_PROBS, dtype=np.float16, mode="r", shape=shape)
        indices = np.memmap(self.root / INDICES, dtype=np.dtype(self.meta["index_dtype"]), mode="r", shape=shape)
        return log_probs, indices

    def ragged(self) -> tuple[np.memmap, np.memmap]:
        """A top-p cache's read-only (counts (rows,), block offsets (num_blocks + 1,))."""
        counts = np.memmap(self.root / COUNTS, dtype=np.dtype(self.meta["count_dtype"]), mode="r", shape=(self.rows,))
        return counts, np.memmap(self.root / OFFSETS, dtype=np.int64, mode="r", shape=(self.meta["num_blocks"] + 1,))


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


def default_cache_path(
    teacher: Path, corpus: PackedCorpus, seq_len: int, top_k: int, top_p: float | None = None
) -> Path:
    nucleus = "" if top_p is None else f"-p{top_p:g}"
    return teacher.resolve().parent / f"teacher-cache-{corpus.fingerprint}-s{seq_len}-k{top_k}{nucleus}"


def check_cache_sizes(top_k: int, batch_size: int, top_p: float | None = None) -> None:
    """`cache-teacher`'s --top-k and --batch-size must be positive, --top-p in (0, 1)."""
    if top_k < 1:
        raise KinheritError(f"--top-k must be ≥ 1, got {top_k}")
    if batch_size < 1:
        raise KinheritError(f"--batch-size must be ≥ 1, got {batch_size}")
    if top_p is not None and not 0 < top_p < 1:
        raise KinheritError(
            f"--top-p must be in (0, 1), got {top_p}; e.g. --top-p 0.95 keeps the tokens holding 95% of the probability"
        )


def nucleus(logits: Tensor, top_k: int, top_p: float) -> tuple[TopK, Tensor]:
    """Top-p truncation within the top-K: per position the k ≤ K most likely tokens, the fewest whose probability
    (over the whole vocabulary) reaches `top_p`, renormalised over those k; the other K − k entries are padding
    (log-probability −∞). logits (..., V) → (`TopK` (..., K), k (...))."""
    logits = logits.float()
    values, indices = logits.topk(top_k, dim=-1)  # (..., K)
    p = (values - logits.logsumexp(-1, keepdim=True)).exp()  # (..., K) over the whole vocabulary
    before = torch.cat([torch.zeros_like(p[..., :1]), p.cumsum(-1)[..., :-1]], dim=-1)  # mass of the likelier tokens
    counts = (before < top_p).sum(-1)  # (...,) ≥ 1
    kept = torch.arange(top_k, device=logits.device) < counts[..., None]  # (..., K)
    return TopK(values.masked_fill(~kept, PAD_LOG_PROB).log_softmax(-1), indices), counts


def training_blocks(corpus: PackedCorpus, seq_len: int) -> PackedBlocks:
    """The corpus's training blocks, refused when there is not one full block to cache."""
    blocks = PackedBlocks(corpus.train_path, corpus.dtype, seq_len)
    if len(blocks) == 0:
        raise KinheritError(f"the training split holds fewer than data.seq_len={seq_len} tokens; nothing to cache")
    return blocks


def build_cache(
    teacher_dir: str | Path,
    config: RunConfig,
    top_k: int,
    out: str | Path | None = None,
    batch_size: int = 32,
    top_p: float | None = None,
) -> TeacherCache:
    """Run the teacher once over every training block of `config.data` and store its top-K outputs (top-p within
    the top-K with `top_p`). Under torchrun / accelerate launch each process runs its share of the batches
    (`kinherit.inherit.parts`); the cache is the same, byte for byte."""
    check_cache_sizes(top_k, batch_size, top_p)
    state = PartialState(cpu=not torch.cuda.is_available())
    with state.main_process_first():
        corpus = prepare_corpus(config.data, main_process=state.is_main_process)
    tokenizer = load_tokenizer(corpus.tokenizer_dir)
    seq_len = config.data.seq_len
    _check_causal(Path(teacher_dir))
    spec = inspect_teacher(teacher_dir, tokenizer, seq_len, task="causal", top_k=top_k, top_k_key="--top-k")
    blocks = training_blocks(corpus, seq_len)
    out = Path(out) if out is not None else default_cache_path(spec.path, corpus, seq_len, top_k, top_p)
    index_dtype = np.dtype(np.uint16 if spec.shared_vocab <= 1 << 16 else np.int32)
    count_dtype = np.dtype(np.uint8 if top_k < 1 << 8 else np.uint16)
    files = (LOG_PROBS, INDICES) if top_p is None else (LOG_PROBS, INDICES, COUNTS, OFFSETS)
    model = spec.load().to(state.device)
    with shared_staging(out, state) as staging:
        writer = PartWriter(staging, state.process_index, files)
        with state.split_between_processes(list(range(0, len(blocks), batch_size))) as starts:
            for start in starts:
                stop = min(start + batch_size, len(blocks))
                input_ids = torch.stack([blocks[i]["input_ids"] for i in range(start, stop)]).to(state.device)  # (B, T)
                with torch.inference_mode():
                    logits = model(input_ids=input_ids).logits[..., : spec.shared_vocab]  # (B, T, V)
                if top_p is None:
                    top = TopK.from_logits(logits, top_k)  # (B, T, K)
                    writer.write(LOG_PROBS, top.log_probs.cpu().numpy().astype(np.float16))
                    writer.write(INDICES, top.indices.cpu().numpy().astype(index_dtype))
                    continue
                top, counts = nucleus(logits, top_k, top_p)  # (B, T, K), (B, T)
                kept = top.log_probs > PAD_LOG_PROB  # (B, T, K): the rows' first k entries, in row order when flattened
                writer.write(LOG_PROBS, top.log_probs[kept].cpu().numpy().astype(np.float16))
                writer.write(INDICES, top.indices[kept].cpu().numpy().astype(index_dtype))
                writer.write(COUNTS, counts.cpu().numpy().astype(count_dtype))
                writer.write(OFFSETS, counts.sum(-1).cpu().numpy().astype(np.int64))  # (B,): entries per block
        writer.close()
        state.wait_for_everyone()
        if state.is_main_process:
            join_parts(staging, state.num_processes, files)
            meta = {
                "format": FORMAT,
                "corpus_fingerprint": corpus.fingerprint,
                "seq_len": seq_len,
                "num_blocks": len(blocks),
                "top_k": top_k,
                "vocab": spec.shared_vocab,
                "index_dtype": index_dtype.name,
                "teacher": _teacher_identity(spec),
            }
            if top_p is not None:
                sizes = np.fromfile(staging / OFFSETS, dtype=np.int64)  # (num_blocks,) → offsets (num_blocks + 1,)
                np.concatenate([[0], sizes.cumsum()]).astype(np.int64).tofile(staging / OFFSETS)
                meta.update(top_p=top_p, kept=int(sizes.sum()), count_dtype=count_dtype.name)
            write_json(staging / META, meta)
    return open_cache(out, corpus, seq_len)


def _check_causal(path: Path) -> None:
    if not path.is_dir():
        raise KinheritError(f"--teacher {path} not found; point it at a trained model folder")
    if task_of(read_config(path, "--teacher")) != "causal":
        raise KinheritError(
            f"teacher {path} is a masked LM; the cache serves causal LMs only, because a masked-LM student corrupts "
            "each block differently every epoch and the teacher must see that same input: use an online teacher "
            "(teacher.path)"
        )


def _teacher_identity(spec: TeacherSpec) -> dict[str, Any]:
    return {
        "path": str(spec.path.resolve()),
        "model_type": spec.config.model_type,
        "digest": _teacher_digest(spec.path),
        "forward_flops_per_token": spec.flops.forward,
        "matmul_params": spec.flops.matmul_params,
    }


def open_cache(
    path: str | Path,
    corpus: PackedCorpus,
    seq_len: int,
    top_k: int | None = None,
    cross_tokenizer: bool = False,
    format_version: int = FORMAT,
) -> TeacherCache:
    """The cache at `path`, checked against the run's data (corpus fingerprint, seq_len), `top_k`, its kind
    (same-tokenizer, or `cross_tokenizer` built by `cache-teacher --cross-tokenizer`) and its `format_version`."""
    path = Path(path)
    if not (path / META).is_file():
        raise KinheritError(
            f"teacher.cache {path} is not a teacher cache (no {META}); build one with kinherit cache-teacher"
        )
    cache = TeacherCache(path, json.loads((path / META).read_text()))
    if bool(cache.meta.get("cross_tokenizer")) != cross_tokenizer:
        raise KinheritError(
            f"teacher.cache {path} was built for a teacher with another tokenizer (cache-teacher "
            "--cross-tokenizer): set teacher.cross_tokenizer"
            if not cross_tokenizer
            else f"teacher.cache {path} is a same-tokenizer cache; with teacher.cross_tokenizer build one with "
            "kinherit cache-teacher --cross-tokenizer"
        )
    if cache.meta.get("format") != format_version:
        raise KinheritError(
            f"teacher.cache {path} has format {cache.meta.get('format')}, this kinherit reads format {format_version}: "
            "rebuild it with kinherit cache-teacher"
        )
    built_for = (cache.meta.get("corpus_fingerprint"), cache.meta.get("seq_len"))
    if built_for != (corpus.fingerprint, seq_len):
        raise KinheritError(
            f"teacher.cache {path} was built for different data (corpus {built_for[0]}, seq_len {built_for[1]}) "
            f"than this run (corpus {corpus.fingerprint}, seq_len {seq_len}): fingerprint mismatch; rebuild it with "
            "kinherit cache-teacher --config"
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
            self._arrays = self.cache.arrays() + (self.cache.ragged() if self.cache.top_p is not None else ())
        block = int(index) % len(self.blocks)
        log_probs, indices = self._block_rows(block) if self.cache.top_p is not None else self._dense_rows(block)
        return {
            **self.blocks[index],
            CACHE_KEYS[0]: torch.from_numpy(log_probs),
            CACHE_KEYS[1]: torch.from_numpy(indices),
        }

    def _dense_rows(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """A top-K cache's (T, k) rows of `block`: float16 and int64."""
        log_probs, indices = self._arrays
        rows = slice(block * self.blocks.seq_len, (block + 1) * self.blocks.seq_len)
        return np.array(log_probs[rows, : self.top_k]), indices[rows, : self.top_k].astype(np.int64)

    def _block_rows(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """A top-p cache's rows of `block` as (T, k): each row's first min(count, k) entries, then padding."""
        log_probs, indices, counts, offsets = self._arrays
        seq_len, k = self.blocks.seq_len, self.top_k
        count = counts[block * seq_len : (block + 1) * seq_len].astype(np.int64)  # (T,)
        first = offsets[block] + np.cumsum(count) - count  # (T,) where each row starts in the flat files
        column = np.arange(k)  # (k,)
        kept = column[None, :] < np.minimum(count, k)[:, None]  # (T, k)
        source = (first[:, None] + column[None, :])[kept]  # (n,)
        out_log_probs = np.full((seq_len, k), PAD_LOG_PROB, dtype=np.float16)
        out_indices = np.zeros((seq_len, k), dtype=np.int64)
        out_log_probs[kept], out_indices[kept] = log_probs[source], indices[source]
        return out_log_probs, out_indices

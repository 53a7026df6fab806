"""Tokenize a corpus once and pack it into flat token memmaps with a deterministic split.

Layout of a cache entry (`<cache_dir>/<fingerprint>/`):
    tokenizer/   HF tokenizer folder (trained here, or a copy of the one given)
    train.bin    all training documents' tokens, each followed by the separator token
    val.bin      same for validation documents
    meta.json    dtype, token and document counts, fingerprint
The fingerprint covers the source files (path, size, mtime), the tokenizer and the split settings,
so a second run with the same inputs reuses the entry and a changed input builds a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from kinherit.config import DataConfig
from kinherit.data.sources import iter_documents, resolve_sources, sources_fingerprint
from kinherit.data.tokenizer import load_tokenizer, separator_id, train_bpe
from kinherit.errors import KinheritError
from kinherit.io import atomic_dir, write_json

_ENCODE_BATCH = 256


@dataclass(frozen=True)
class PackedCorpus:
    """A finished cache entry: where the token files are and what they hold."""

    root: Path
    dtype: np.dtype
    train_tokens: int
    val_tokens: int
    train_documents: int
    val_documents: int
    fingerprint: str

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"

    @property
    def train_path(self) -> Path:
        return self.root / "train.bin"

    @property
    def val_path(self) -> Path:
        return self.root / "val.bin"

    def tokens(self, split: str) -> np.memmap:
        """Read-only view of one split's token stream."""
        path = self.train_path if split == "train" else self.val_path
        return np.memmap(path, dtype=self.dtype, mode="r")

    def describe(self) -> str:
        return (
            f"corpus {self.fingerprint}: {self.train_tokens:,} train tokens ({self.train_documents:,} documents), "
            f"{self.val_tokens:,} val tokens ({self.val_documents:,} documents)"
        )


def default_cache_dir() -> Path:
    return Path(os.environ.get("KINHERIT_CACHE", Path.home() / ".cache" / "kinherit"))


def _tokenizer_key(config: DataConfig) -> str:
    tok = config.tokenizer
    if tok.path is None:
        return f"bpe{tok.train_vocab_size}-mf{tok.min_frequency}"
    folder = Path(tok.path)
    if not folder.is_dir():
        raise KinheritError(f"data.tokenizer.path {folder} not found")
    digest = hashlib.sha256()
    for file in sorted(folder.iterdir()):
        if file.is_file():
            digest.update(file.name.encode() + file.read_bytes())
    return "tok" + digest.hexdigest()[:12]


def corpus_fingerprint(config: DataConfig) -> str:
    files = resolve_sources(config.sources)
    parts = [
        sources_fingerprint(files),
        _tokenizer_key(config),
        f"val{config.val_fraction}",
        f"seed{config.split_seed}",
        f"docs{config.max_documents}",
        f"field{config.text_field}",
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _load_entry(root: Path) -> PackedCorpus:
    meta = json.loads((root / "meta.json").read_text())
    return PackedCorpus(
        root=root,
        dtype=np.dtype(meta["dtype"]),
        train_tokens=meta["train_tokens"],
        val_tokens=meta["val_tokens"],
        train_documents=meta["train_documents"],
        val_documents=meta["val_documents"],
        fingerprint=meta["fingerprint"],
    )


def _documents(config: DataConfig) -> list[str]:
    docs = []
    for doc in iter_documents(resolve_sources(config.sources), config.text_field):
        docs.append(doc)
        if config.max_documents is not None and len(docs) >= config.max_documents:
            break
    if not docs:
        raise KinheritError(f"the corpus {config.sources} is empty (every document is blank); add text")
    return docs


def _encode(tokenizer: PreTrainedTokenizerBase, docs: list[str]) -> list[np.ndarray]:
    """Token ids of each document, without special tokens (fast Rust batch encoding)."""
    backend = tokenizer.backend_tokenizer
    encoded: list[np.ndarray] = []
    for start in tqdm(range(0, len(docs), _ENCODE_BATCH), desc="tokenize", unit="batch", leave=False):
        batch = backend.encode_batch(docs[start : start + _ENCODE_BATCH], add_special_tokens=False)
        encoded.extend(np.asarray(item.ids, dtype=np.int64) for item in batch)
    return encoded


def _split(lengths: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of validation documents: a seeded permutation, filled to `val_fraction` of tokens."""
    if len(lengths) < 2:
        raise KinheritError("the corpus has a single document; a train/validation split needs at least two")
    order = np.random.default_rng(seed).permutation(len(lengths))
    target = val_fraction * lengths.sum()
    is_val = np.zeros(len(lengths), dtype=bool)
    taken = 0
    for index in order[:-1]:  # the last one in the permutation always stays in train
        if taken >= target:
            break
        is_val[index] = True
        taken += lengths[index]
    return is_val


def _write_stream(path: Path, encoded: list[np.ndarray], separator: int, dtype: np.dtype) -> int:
    total = sum(len(ids) + 1 for ids in encoded)
    out = np.memmap(path, dtype=dtype, mode="w+", shape=(max(total, 1),))
    pos = 0
    for ids in encoded:
        out[pos : pos + len(ids)] = ids
        out[pos + len(ids)] = separator
        pos += len(ids) + 1
    out.flush()
    del out
    return total


def prepare_corpus(config: DataConfig, main_process: bool = True) -> PackedCorpus:
    """Return the packed corpus for `config`, building and caching it on first use.

    Only the main process builds; others must call after it (see `TrainingArguments.main_process_first`).
    """
    fingerprint = corpus_fingerprint(config)
    root = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    entry = root / fingerprint
    if (entry / "meta.json").is_file():
        return _load_entry(entry)
    if not main_process:
        raise KinheritError(f"corpus cache {entry} missing on a non-main process; run the main process first")

    docs = _documents(config)
    with atomic_dir(entry) as staging:
        if config.tokenizer.path is None:
            tokenizer = train_bpe(iter(docs), config.tokenizer.train_vocab_size, staging / "tokenizer", config.tokenizer.min_frequency)
        else:
            tokenizer = load_tokenizer(config.tokenizer.path)
            shutil.copytree(config.tokenizer.path, staging / "tokenizer")
        vocab = len(tokenizer)
        dtype = np.dtype(np.uint16 if vocab <= np.iinfo(np.uint16).max + 1 else np.uint32)
        encoded = _encode(tokenizer, docs)
        is_val = _split(np.array([len(ids) + 1 for ids in encoded]), config.val_fraction, config.split_seed)
        separator = separator_id(tokenizer)
        train_tokens = _write_stream(staging / "train.bin", [e for e, v in zip(encoded, is_val) if not v], separator, dtype)
        val_tokens = _write_stream(staging / "val.bin", [e for e, v in zip(encoded, is_val) if v], separator, dtype)
        write_json(
            staging / "meta.json",
            {
                "fingerprint": fingerprint,
                "dtype": dtype.name,
                "vocab_size": vocab,
                "train_tokens": train_tokens,
                "val_tokens": val_tokens,
                "train_documents": int((~is_val).sum()),
                "val_documents": int(is_val.sum()),
                "sources": config.sources,
            },
        )
    return _load_entry(entry)

"""Tokenize a corpus once and pack it into flat token memmaps, streaming, in bounded memory.

Layout of a cache entry (`<cache_dir>/<fingerprint>/`):
    tokenizer/   HF tokenizer folder (trained here on the training side only, or a copy of the one given)
    train.bin    the training pieces' tokens, each piece followed by the separator token
    val.bin      same for validation
    meta.json    dtype, token and piece counts, split rule, fingerprint
The fingerprint covers the source files (path, size, mtime), the tokenizer and the split settings,
so a second run with the same inputs reuses the entry and a changed input builds a new one.

Packing streams chunks (kinherit.data.split) into batches of about BATCH_BYTES of text, encodes each
batch with the Rust batch encoder on every core (in a helper thread, so reading the next batch
overlaps it) and appends the ids to the two files, as uint16/uint32 arrays (never Python int lists).
Memory is bounded whatever the corpus size: two batches of text, and the encoder's working memory, which
grows with the length of each text it encodes at once (a reading block, `sources.BLOCK_BYTES`; measured on
20 MB of one file: +472 MiB peak over the loaded libraries with 1 MiB blocks and 8 MiB batches, +131 MiB
with 256 KiB blocks and 2 MiB batches). Everything is written under `.tmp-<fingerprint>-<pid>-*` and renamed at the end,
so a killed job leaves nothing that looks complete; leftovers of dead jobs are removed by the next build.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from kinherit.config import DataConfig
from kinherit.data.sources import SourceFile, resolve_sources, sources_fingerprint
from kinherit.data.split import Chunk, check_document_split, iter_chunks, split_mode, unit_hash
from kinherit.data.tokenizer import load_tokenizer, separator_id, train_bpe
from kinherit.errors import KinheritError
from kinherit.io import atomic_dir, write_json

FORMAT = "stream-v3"  # v3: 256 KiB reading blocks (were 1 MiB), so a big file is cut at other places
BATCH_BYTES = 2 << 20
MB = 1_000_000


@dataclass(frozen=True)
class PackedCorpus:
    """A finished cache entry: where the token files are and what they hold.

    A piece is a document, or (with `split == "contiguous"`) the part of a file on one side of its window.
    """

    root: Path
    dtype: np.dtype
    train_tokens: int
    val_tokens: int
    train_documents: int
    val_documents: int
    fingerprint: str
    split: str

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
            f"corpus {self.fingerprint} ({self.split} split): {self.train_tokens:,} train tokens "
            f"({self.train_documents:,} pieces), {self.val_tokens:,} val tokens ({self.val_documents:,} pieces)"
        )

    def epochs_notice(self, tokens_per_step: int, max_steps: int) -> str | None:
        """One line when `max_steps` steps of `tokens_per_step` tokens read more than the training tokens, so the
        run repeats the corpus (the data loader starts over silently); None when every token is read at most once."""
        return epochs_notice(self.train_tokens, tokens_per_step, max_steps)


def epochs_notice(train_tokens: int, tokens_per_step: int, max_steps: int) -> str | None:
    """See `PackedCorpus.epochs_notice`."""
    read = tokens_per_step * max_steps
    if max_steps <= 0 or train_tokens <= 0 or read <= train_tokens:
        return None
    return (
        f"the run reads {read:,} tokens ({max_steps:,} steps × {tokens_per_step:,}), {read / train_tokens:.1f} epochs "
        f"over the {train_tokens:,} train tokens: the corpus is repeated (add text or lower train.max_steps to read "
        "each token once)"
    )


def default_cache_dir() -> Path:
    return Path(os.environ.get("KINHERIT_CACHE", Path.home() / ".cache" / "kinherit"))


def _tokenizer_key(config: DataConfig) -> str:
    tok = config.tokenizer
    if tok.path is None:
        return f"bpe{tok.train_vocab_size}-mf{tok.min_frequency}-sample{tok.train_sample_mb}MB"
    folder = Path(tok.path)
    if not folder.is_dir():
        raise KinheritError(f"data.tokenizer.path {folder} not found")
    digest = hashlib.sha256()
    for file in sorted(folder.iterdir()):
        if file.is_file():
            digest.update(file.name.encode() + file.read_bytes())
    return "tok" + digest.hexdigest()[:12]


def corpus_fingerprint(config: DataConfig, files: list[SourceFile] | None = None) -> str:
    files = resolve_sources(config.sources) if files is None else files
    parts = [
        FORMAT,
        sources_fingerprint(files),
        _tokenizer_key(config),
        f"split-{split_mode(config, files)}",
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
        split=meta["split"],
    )


def tokenizer_sample(files: list[SourceFile], config: DataConfig, mode: str) -> Iterator[str]:
    """The BPE's training text: training-side chunks only, each kept with probability
    p = min(1, train_sample_mb / ((1 − val_fraction) · corpus MB)) by a seeded hash of its index, and
    never more than train_sample_mb (the stream stops there)."""
    budget = config.tokenizer.train_sample_mb * MB
    total = sum(item.nbytes for item in files)
    keep = min(1.0, budget / max(1.0, (1.0 - config.val_fraction) * total))
    taken = 0
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1000, desc="sample for the tokenizer") as bar:
        for index, chunk in enumerate(iter_chunks(files, config, mode)):
            bar.update(chunk.nbytes)
            if (
                chunk.val
                or not chunk.text
                or (keep < 1.0 and unit_hash(config.split_seed, b"sample%d" % index) >= keep)
            ):
                continue
            yield chunk.text
            taken += chunk.nbytes
            if taken >= budget:
                return


class _SideWriter:
    """Appends one side's token ids to its file; a piece's separator follows its last chunk. Ids stay numpy
    arrays of the file's dtype (2 or 4 bytes a token) from the encoder to the file, never Python int lists."""

    def __init__(self, handle: BinaryIO, dtype: np.dtype, separator: int):
        self.handle = handle
        self.separator = np.array([separator], dtype=dtype)
        self.tokens = self.pieces = 0
        self.open_piece = False
        self.buffer: list[np.ndarray] = []

    def add(self, ids: np.ndarray, end: bool) -> None:
        if len(ids):
            self.buffer.append(ids)
            self.open_piece = True
        if end and self.open_piece:
            self.buffer.append(self.separator)
            self.pieces += 1
            self.open_piece = False

    def flush(self) -> None:
        for ids in self.buffer:
            self.handle.write(ids.tobytes())
            self.tokens += len(ids)
        self.buffer.clear()


def _batches(chunks: Iterator[Chunk]) -> Iterator[list[Chunk]]:
    """Groups of chunks holding about BATCH_BYTES of text; blank chunks only carry their `end` mark."""
    batch: list[Chunk] = []
    size = 0
    for chunk in chunks:
        batch.append(chunk)
        size += chunk.nbytes
        if size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _encoder(tokenizer_dir: Path) -> tuple[Tokenizer, int]:
    """The Rust tokenizer without truncation or padding (a folder's tokenizer.json may set them), and the separator
    id."""
    tokenizer = load_tokenizer(tokenizer_dir)
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend, separator_id(tokenizer)


def pack(files: list[SourceFile], config: DataConfig, mode: str, tokenizer_dir: Path, out: Path) -> dict[str, int]:
    """Stream the corpus into `out/train.bin` and `out/val.bin`; return token and piece counts."""
    encoder, separator = _encoder(tokenizer_dir)
    vocab = encoder.get_vocab_size(with_added_tokens=True)
    dtype = np.dtype(np.uint16 if vocab <= np.iinfo(np.uint16).max + 1 else np.uint32)
    total = sum(item.nbytes for item in files) if not any(item.is_records for item in files) else None
    empty = np.zeros(0, dtype=dtype)

    def encode(batch: list[Chunk]) -> list[np.ndarray]:
        """Each chunk's ids as an array of `dtype`; an Encoding is dropped as soon as its ids are copied."""
        texts = [chunk.text for chunk in batch if chunk.text and not chunk.text.isspace()]
        encodings = encoder.encode_batch_fast(texts, add_special_tokens=False)
        arrays = []
        for i in range(len(encodings)):
            arrays.append(np.array(encodings[i].ids, dtype=dtype))
            encodings[i] = None
        ids = iter(arrays)
        return [next(ids) if chunk.text and not chunk.text.isspace() else empty for chunk in batch]

    with (
        (out / "train.bin").open("wb") as train_file,
        (out / "val.bin").open("wb") as val_file,
        ThreadPoolExecutor(max_workers=1) as pool,
        tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1000, desc="tokenize and pack") as bar,
    ):
        sides = {False: _SideWriter(train_file, dtype, separator), True: _SideWriter(val_file, dtype, separator)}
        start = time.perf_counter()

        def write(batch: list[Chunk], future: Future) -> None:
            for chunk, ids in zip(batch, future.result()):
                sides[chunk.val].add(ids, chunk.end)
            for side in sides.values():
                side.flush()
            tokens = sides[False].tokens + sides[True].tokens
            bar.set_postfix_str(f"{tokens / (time.perf_counter() - start):,.0f} tokens/s", refresh=False)
            bar.update(sum(chunk.nbytes for chunk in batch))

        pending: tuple[list[Chunk], Future] | None = None
        for batch in _batches(iter_chunks(files, config, mode)):
            future = pool.submit(encode, batch)  # the encoder releases the GIL: the next read overlaps it
            if pending is not None:
                write(*pending)
            pending = (batch, future)
        if pending is not None:
            write(*pending)
    train, val = sides[False], sides[True]
    return {
        "dtype": dtype.name,
        "vocab_size": vocab,
        "train_tokens": train.tokens,
        "val_tokens": val.tokens,
        "train_documents": train.pieces,
        "val_documents": val.pieces,
    }


def _check_sizes(stats: dict[str, int], config: DataConfig, mode: str) -> None:
    if stats["train_tokens"] == 0 and stats["val_tokens"] == 0:
        raise KinheritError(f"the corpus {config.sources} is empty (every document is blank); add text")
    for side, other in (("val", "train"), ("train", "val")):
        if stats[f"{side}_tokens"] == 0:
            name = "validation" if side == "val" else "training"
            raise KinheritError(
                f"the {name} split is empty: {stats[f'{other}_tokens']:,} tokens ({stats[f'{other}_documents']:,} "
                f"pieces) went to {other} and 0 to {side} (data.split={mode}, val_fraction={config.val_fraction}); "
                "raise data.val_fraction, change data.split_seed or set data.split"
            )


def _remove_dead_staging(root: Path, fingerprint: str) -> None:
    """Delete `.tmp-<fingerprint>-<pid>-*` folders whose process (on this machine) is gone."""
    pattern = re.compile(rf"\.tmp-{fingerprint}-(\d+)-[0-9a-f]+")
    for leftover in root.glob(f".tmp-{fingerprint}-*"):
        match = pattern.fullmatch(leftover.name)
        if match is None:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(leftover, ignore_errors=True)
        except PermissionError:  # alive, owned by another user
            pass


def prepare_corpus(config: DataConfig, main_process: bool = True) -> PackedCorpus:
    """Return the packed corpus for `config`, building and caching it on first use.

    Only the main process builds; others must call after it (see `TrainingArguments.main_process_first`).
    """
    files = resolve_sources(config.sources)
    mode = split_mode(config, files)
    fingerprint = corpus_fingerprint(config, files)
    root = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    entry = root / fingerprint
    if (entry / "meta.json").is_file():
        return _load_entry(entry)
    if not main_process:
        raise KinheritError(f"corpus cache {entry} missing on a non-main process; run the main process first")
    if mode == "documents":
        check_document_split(config, files)
    root.mkdir(parents=True, exist_ok=True)
    _remove_dead_staging(root, fingerprint)

    with atomic_dir(entry) as staging:
        tokenizer_dir = staging / "tokenizer"
        if config.tokenizer.path is None:
            sample = tokenizer_sample(files, config, mode)
            train_bpe(sample, config.tokenizer.train_vocab_size, tokenizer_dir, config.tokenizer.min_frequency)
        else:
            load_tokenizer(config.tokenizer.path)
            shutil.copytree(config.tokenizer.path, tokenizer_dir)
        stats = pack(files, config, mode, tokenizer_dir, staging)
        _check_sizes(stats, config, mode)
        write_json(
            staging / "meta.json", {"fingerprint": fingerprint, "split": mode, **stats, "sources": config.sources}
        )
    return _load_entry(entry)

"""The train/validation split, decided while streaming (no global permutation, O(1) memory).

Two rules, both seeded by `data.split_seed` through u(key) = blake2b(key, salt=seed) / 2⁶⁴ ∈ [0, 1):

- `documents`: a document goes to validation iff u(key) < val_fraction. A text file's key is its
  name relative to its source (all of the file goes one way); a record's key is its text, so exact
  duplicates always land on the same side.
- `contiguous` (nanoGPT style, for one or a few big files): each text file keeps a contiguous window of
  val_fraction of its bytes for validation, starting at byte u(key)·(1 − val_fraction)·size; both
  window edges move forward to the next line start. Train text on either side of the window becomes
  two pieces, so no piece spans the hole. Records are always split by document.

`auto` picks `documents` when a source holds records (JSONL/Parquet/Arrow/saved datasets) or when
at least MIN_EXPECTED_VAL_DOCUMENTS / val_fraction text files are used (`max_documents` counts), so
at least that many validation documents are expected; else `contiguous`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from kinherit.config import DataConfig
from kinherit.data.sources import SourceFile, TextDecoder, iter_blocks, iter_records
from kinherit.errors import KinheritError

MIN_EXPECTED_VAL_DOCUMENTS = 10


@dataclass(frozen=True)
class Chunk:
    """Text for one side; `end` marks the end of a piece (a document or part of one): a separator follows."""

    text: str
    val: bool
    end: bool
    nbytes: int


def unit_hash(seed: int, key: bytes) -> float:
    """u = blake2b(key, salt=seed) / 2⁶⁴: a seeded, uniform number in [0, 1) per key."""
    digest = hashlib.blake2b(key, digest_size=8, salt=seed.to_bytes(8, "little", signed=True) + bytes(8))
    return int.from_bytes(digest.digest(), "little") / 2**64


def split_mode(config: DataConfig, files: list[SourceFile]) -> str:
    """Resolve `data.split` (see the module docstring for `auto`)."""
    if config.split != "auto":
        return config.split
    if any(item.is_records for item in files):
        return "documents"
    used = len(files[: config.max_documents])
    return "documents" if used * config.val_fraction >= MIN_EXPECTED_VAL_DOCUMENTS else "contiguous"


def check_document_split(config: DataConfig, files: list[SourceFile]) -> None:
    """Refuse up front a `documents` split of text files that sends every file to one side."""
    if any(item.is_records for item in files):
        return  # decided per record while streaming; checked on the packed sizes
    files = files[: config.max_documents]
    val = sum(unit_hash(config.split_seed, item.key.encode()) < config.val_fraction for item in files)
    if val == 0 or val == len(files):
        side = "validation" if val == 0 else "training"
        raise KinheritError(
            f"the {side} split would be empty: {val} of {len(files)} files fall to validation with "
            f"val_fraction={config.val_fraction}, split_seed={config.split_seed}; set data.split=contiguous, "
            "raise data.val_fraction or change data.split_seed"
        )


def contiguous_window(size: int, val_fraction: float, seed: int, key: str) -> tuple[int, int]:
    """Raw byte offsets [a, b) of a document's validation window (before moving to line starts)."""
    start = int(unit_hash(seed, key.encode()) * (1.0 - val_fraction) * size)
    return start, start + int(round(val_fraction * size))


def _text_chunks(item: SourceFile, config: DataConfig, mode: str) -> Iterator[Chunk]:
    """One text file as chunks; in `contiguous` mode the sides alternate at the window edges."""
    decode = TextDecoder(item.path)
    if mode == "documents":
        edges: list[int] = []
        val = unit_hash(config.split_seed, item.key.encode()) < config.val_fraction
    else:
        edges = list(contiguous_window(item.nbytes, config.val_fraction, config.split_seed, item.key))
        val = False
    for offset, data in iter_blocks(item.path):
        pos = 0
        while edges and edges[0] < offset + len(data):
            rel = edges.pop(0) - offset  # ≥ 0: an edge is handled in the block that holds it
            newline = data.find(b"\n", rel - 1) if rel > 0 else -1
            cut = max(pos, 0 if rel == 0 else newline + 1 if newline >= 0 else len(data))
            yield Chunk(decode(data[pos:cut]), val, True, cut - pos)
            pos, val = cut, not val
        yield Chunk(decode(data[pos:]), val, False, len(data) - pos)
    yield Chunk("", val, True, 0)


def _record_chunks(item: SourceFile, config: DataConfig) -> Iterator[Chunk]:
    seed, fraction = config.split_seed, config.val_fraction
    for texts in iter_records(item, config.text_field):
        for text in texts:
            if text is None:
                continue
            text = str(text)
            data = text.encode()
            yield Chunk(text, unit_hash(seed, data) < fraction, True, len(data))


def iter_chunks(files: list[SourceFile], config: DataConfig, mode: str) -> Iterator[Chunk]:
    """The whole corpus as chunks in source order, each already assigned to a side.

    `data.max_documents` stops once that many documents (text files or records) have been read.
    """
    limit = config.max_documents
    started = 0
    for item in files:
        if limit is not None and started >= limit:
            return
        if not item.is_records:
            started += 1
            yield from _text_chunks(item, config, mode)
            continue
        for chunk in _record_chunks(item, config):
            if limit is not None and started >= limit:
                return
            started += 1
            yield chunk

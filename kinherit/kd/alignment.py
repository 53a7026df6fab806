"""Aligning a student block with the teacher's tokenization of the same text (cross-tokenizer KI).

The text of a packed student block is recomputed from its own tokens: every token id maps to the exact
bytes it stands for (`token_bytes`: byte-level BPE through the GPT-2 byte alphabet, SentencePiece-style
tokens through `▁` → space and `<0xHH>` byte fallback), so the block's text is the concatenation of its
tokens' bytes, cut only where a character is split at the block's two edges. Re-tokenizing that text per
block, rather than carrying character offsets through packing, keeps the packed corpus format (and the
same-tokenizer path) untouched, costs one Rust `encode` per text run of a block, and gives the teacher exactly
the text the student sees, no more (each block is a fresh context for both models).

Special tokens (the packing separator `<|endoftext|>`) carry no text: each is a one-unit span of its own
on both sides, and the teacher gets its own separator there, so "end of document" is an aligned span.
The teacher's tokenization comes from its fast tokenizer (the Rust `encode`, with offsets); its token ends
are taken from the tokens' own bytes, which are exact where character offsets are not (a byte-level or
byte-fallback token can hold part of a character; whitespace trimming shifts offsets). The teacher's
tokens must spell the text back byte for byte: a tokenizer that normalises (lowercases, NFKC...) cannot be
aligned and is refused before training (`Aligner.check_text`, over the training text).

Positions are byte offsets into the block's text (special tokens one unit each). With e_s(i) the end of
student token i and e_t(j) that of teacher token j, the common boundaries are B = {e_s} ∩ {e_t}, and
between consecutive b < b' of B lies one *span*: the student tokens i with b < e_s(i) ≤ b' and the
teacher tokens j with b < e_t(j) ≤ b'. A span is a maximal stretch of text whose start and end are token
boundaries in both tokenizations. Spans holding student token 0 or teacher token 0 have no likelihood
(nothing predicts a block's first token) and are dropped, as are spans past the teacher's `max_len`
tokens, and text whose boundaries never coincide inside the block (e.g. a long word the two split at
different places up to the block's end): it belongs to no span, and the block's coverage shrinks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from kinherit.data.tokenizer import separator_id
from kinherit.errors import KinheritError

_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")
PROBE = "Hello World.\n\tÜber café — naïve 😀 x = f(1, 2)  # OK\n"
"""Text every tokenizer pair is checked on before training: mixed case, tabs, accents, an emoji."""


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's `bytes_to_unicode`: the printable character that byte-level BPE uses for each byte."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def _decoder_kinds(spec: dict[str, Any]) -> set[str]:
    decoder = spec.get("decoder") or {}
    parts = decoder.get("decoders", [decoder]) if decoder.get("type") == "Sequence" else [decoder]
    return {part.get("type", "") for part in parts}


def _name(tokenizer: Any) -> str:
    return str(getattr(tokenizer, "name_or_path", "")) or "tokenizer"


def backend(tokenizer: Any, role: str) -> Tokenizer:
    """The Rust tokenizer behind a fast HF tokenizer, without truncation or padding; a slow one is refused."""
    if not getattr(tokenizer, "is_fast", False):
        raise KinheritError(
            f"{role} tokenizer {_name(tokenizer)} is a slow (Python) tokenizer without character offsets; "
            "cross-tokenizer KI needs a fast tokenizer (a tokenizer.json)"
        )
    rust = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    rust.no_truncation()
    rust.no_padding()
    return rust


def token_bytes(tokenizer: Any, role: str) -> list[bytes | None]:
    """The bytes each token id stands for; None for special tokens (they carry no text)."""
    spec = json.loads(backend(tokenizer, role).to_str())
    kinds = _decoder_kinds(spec)
    special = {t["id"] for t in spec.get("added_tokens", []) if t.get("special")} | set(tokenizer.all_special_ids)
    added = {t["id"] for t in spec.get("added_tokens", [])}
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    table: list[bytes | None] = []
    if "ByteLevel" in kinds:
        decoder = _byte_decoder()
        for index, token in enumerate(tokens):
            if index in special or token is None:
                table.append(None)
            elif index in added or any(c not in decoder for c in token):
                table.append(token.encode())
            else:
                table.append(bytes(decoder[c] for c in token))
    elif kinds & {"Metaspace", "ByteFallback", "Replace"}:
        for index, token in enumerate(tokens):
            match = _BYTE_FALLBACK.fullmatch(token or "")
            if index in special or token is None:
                table.append(None)
            elif match and index not in added:
                table.append(bytes([int(match.group(1), 16)]))
            else:
                table.append(token.replace("▁", " ").encode())
    else:
        raise KinheritError(
            f"{role} tokenizer {_name(tokenizer)} uses a {'/'.join(sorted(kinds - {''})) or 'missing'} decoder: "
            "cross-tokenizer KI maps tokens to text for byte-level BPE and SentencePiece-style (Metaspace, "
            "byte-fallback) tokenizers only"
        )
    return table


def _is_text(data: bytes) -> bool:
    """Whether `data` is whole UTF-8 characters."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _valid_core(data: bytes) -> tuple[int, int]:
    """(lead, stop): `data[lead:stop]` drops a character cut at either edge (continuation bytes before
    the first lead byte, an incomplete sequence at the end)."""
    lead = 0
    while lead < min(3, len(data)) and 0x80 <= data[lead] < 0xC0:
        lead += 1
    stop = len(data)
    for back in range(1, min(4, stop - lead) + 1):
        byte = data[stop - back]
        if byte >= 0xC0:  # a lead byte: is its sequence complete?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            if back < need:
                stop -= back
            break
        if byte < 0x80:
            break
    return lead, stop


@dataclass(frozen=True)
class BlockAlignment:
    """One student block of T tokens against the teacher's n_t ≤ max_len tokens of the same text."""

    teacher_ids: np.ndarray
    """(n_t,) int64: the teacher's input."""
    span_start: np.ndarray
    """(T,) int64: on a student row that ends a span, the span's first student row; −1 elsewhere."""
    span_teacher: np.ndarray
    """(T, 2) int64: on span-end rows, the span's first and last teacher positions; −1 elsewhere."""
    boundary: np.ndarray
    """(T,) int64: the teacher position whose token ends where student token i ends (a common boundary,
    so both models' next-token predictions there condition on the same text); −1 elsewhere."""


class Aligner:
    """Student blocks → teacher input + span alignment (see the module docstring)."""

    def __init__(self, student: Any, teacher: Any, max_len: int):
        self.student_bytes = token_bytes(student, "student")
        self.teacher_bytes = token_bytes(teacher, "teacher")
        self.teacher = backend(teacher, "teacher")
        self.teacher_separator = separator_id(teacher)
        self.max_len, self.teacher_name = max_len, _name(teacher)
        self.encode_exact([PROBE])

    def encode_exact(self, texts: list[str]) -> list[tuple[list[int], np.ndarray]]:
        """The teacher's (ids, byte ends) of each text; a `KinheritError` when its tokens do not spell the text
        (a normalising tokenizer). One leading space the tokenizer adds itself (Metaspace's prefix) is allowed."""
        # one by one: a block's few texts are cheaper than a thread pool's start-up
        return [self._exact(text, self.teacher.encode(text, add_special_tokens=False)) for text in texts]

    def _exact(self, text: str, encoding: Any) -> tuple[list[int], np.ndarray]:
        ids = list(encoding.ids)
        pieces = [self.teacher_bytes[i] or b"" for i in ids]
        spelled, data = b"".join(pieces), text.encode()
        shift = 1 if spelled != data and spelled == b" " + data else 0
        if spelled[shift:] != data or len(encoding.offsets) != len(ids):
            raise KinheritError(
                f"teacher tokenizer {self.teacher_name} does not keep the text as is (its tokens spell "
                f"{spelled[:40].decode(errors='replace')!r} for {text[:40]!r}): it normalises the text (lowercasing, "
                "Unicode normalisation...), so its tokens cannot be aligned with the student's by character offsets"
            )
        ends = np.cumsum([len(p) for p in pieces], dtype=np.int64) - shift
        # a token holding only the tokenizer's own leading space spells no text: it is read with the next token
        # (its end would otherwise coincide with whatever precedes the text, e.g. a separator's boundary)
        return ids, np.maximum(ends, ends[ends > 0][0] if (ends > 0).any() else 0)

    def check_text(self, tokens: np.ndarray, piece: int = 1 << 24) -> None:
        """Refuse, before training, a teacher tokenizer that would not keep some of the text of `tokens` (the
        student's training stream) as is. Every character of that text lies in a token that holds whole characters
        or in a run of consecutive tokens that share one (byte-level and byte-fallback pieces): each distinct such
        token and run is encoded once by the teacher and must be spelled back byte for byte. (A normalisation
        that depends on the neighbouring characters, e.g. composing a letter and a combining accent, is still only
        met when its block is aligned.)"""
        table = self.student_bytes
        partial = np.array([data is not None and not _is_text(data) for data in table] + [False])  # (V + 1,)
        seen = np.zeros(len(table) + 1, dtype=bool)
        runs: set[bytes] = set()
        carry = np.zeros(0, dtype=tokens.dtype)  # a run still open at the end of the previous piece
        for start in range(0, len(tokens), piece):
            ids = np.asarray(tokens[start : start + piece])  # (n,), the stream's own integer type
            if len(ids) and ids.max() >= len(table):  # an id past the tokenizer (a padded embedding): no text
                ids = np.minimum(ids, len(table))
            seen |= np.bincount(ids, minlength=len(seen)) > 0
            ids = np.concatenate([carry, ids])
            at = np.flatnonzero(partial[ids])
            edges = np.flatnonzero(np.diff(at) != 1) + 1
            groups = np.split(at, edges) if len(at) else []
            carry = (
                ids[groups.pop()]
                if groups and groups[-1][-1] == len(ids) - 1 and start + piece < len(tokens)
                else carry[:0]
            )
            runs.update(ids[group].tobytes() for group in groups)
        texts = [table[i].decode() for i in np.flatnonzero(seen[:-1] & ~partial[:-1]) if table[i] is not None]
        for run in runs:
            data = b"".join(table[i] for i in np.frombuffer(run, dtype=tokens.dtype))
            lead, stop = _valid_core(data)
            texts.append(data[lead:stop].decode("utf-8", errors="replace"))
        texts = [text for text in texts if text]
        for text, encoding in zip(texts, self.teacher.encode_batch(texts, add_special_tokens=False)):
            self._exact(text, encoding)

    def align(self, student_ids: np.ndarray) -> BlockAlignment:
        """Align one block of student token ids (T,)."""
        s_ends = np.empty(len(student_ids), dtype=np.int64)
        segments: list[tuple[int, bytes]] = []  # (start position, bytes) of each run of text tokens
        order: list[tuple[bool, int]] = []  # (is_special, student row or segment index), in block order
        pos, run_start, run = 0, 0, []
        for i, token in enumerate(student_ids.tolist()):
            data = self.student_bytes[token] if token < len(self.student_bytes) else None
            if data is None:  # a special token: one unit of its own
                if run:
                    segments.append((run_start, b"".join(run)))
                    order.append((False, len(segments) - 1))
                    run = []
                order.append((True, i))
                pos += 1
            else:
                if not run:
                    run_start = pos
                run.append(data)
                pos += len(data)
            s_ends[i] = pos
        if run:
            segments.append((run_start, b"".join(run)))
            order.append((False, len(segments) - 1))

        texts, bases = [], []
        for start, data in segments:
            lead, stop = _valid_core(data)
            try:
                texts.append(data[lead:stop].decode("utf-8"))
            except UnicodeDecodeError:
                raise KinheritError(
                    "a student block holds bytes that are not UTF-8 text; cross-tokenizer KI needs text corpora"
                ) from None
            bases.append(start + lead)
        encoded = self.encode_exact(texts) if texts else []
        t_ids: list[int] = []
        t_ends: list[int] = []
        for special, index in order:
            if special:  # the teacher's own separator, on the same unit
                t_ids.append(self.teacher_separator)
                t_ends.append(int(s_ends[index]))
            else:
                ids, ends = encoded[index]
                t_ids.extend(ids)
                t_ends.extend((ends + bases[index]).tolist())
        t_ids, t_ends = t_ids[: self.max_len], t_ends[: self.max_len]
        return self._spans(s_ends, np.asarray(t_ids, dtype=np.int64), np.asarray(t_ends, dtype=np.int64))

    def _spans(self, s_ends: np.ndarray, t_ids: np.ndarray, t_ends: np.ndarray) -> BlockAlignment:
        T = len(s_ends)
        span_start = np.full(T, -1, dtype=np.int64)
        span_teacher = np.full((T, 2), -1, dtype=np.int64)
        boundary = np.full(T, -1, dtype=np.int64)
        last_s = {e: i for i, e in enumerate(s_ends.tolist())}  # end → the last student token ending there
        last_t = {e: j for j, e in enumerate(t_ends.tolist())}
        previous: tuple[int, int] | None = None
        for end in sorted(last_s.keys() & last_t.keys()):
            i, j = last_s[end], last_t[end]
            boundary[i] = j
            if previous is not None:  # the span after the previous boundary; the first one holds token 0
                span_start[i] = previous[0] + 1
                span_teacher[i] = (previous[1] + 1, j)
            previous = (i, j)
        return BlockAlignment(t_ids, span_start, span_teacher, boundary)

"""Alignment of two tokenizations of the same text, on hand-made tokenizers (a word split differently,
leading-space and whitespace tokens, byte fallback, separators, spans without a common boundary,
characters cut at a block's edge) and exactly on real BPEs of the test corpus."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from kinherit.config import validate_config
from kinherit.data.dataset import PackedBlocks
from kinherit.data.packing import prepare_corpus
from kinherit.data.tokenizer import load_tokenizer
from kinherit.errors import KinheritError
from kinherit.kd.alignment import Aligner, _byte_decoder, token_bytes
from tests.conftest import _tiny_run

EOS = "<|endoftext|>"


def byte_bpe(
    merges: list[tuple[str, str]], lowercase: bool = False, replace: tuple[str, str] | None = None
) -> PreTrainedTokenizerFast:
    """A byte-level BPE with the 256-byte alphabet and the given merges (GPT-2 style: Ġ is a leading space)."""
    vocab = {EOS: 0}
    for char in sorted(_byte_decoder(), key=_byte_decoder().get):
        vocab[char] = len(vocab)
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    if lowercase:
        backend.normalizer = normalizers.Lowercase()
    if replace:
        backend.normalizer = normalizers.Replace(*replace)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS)


def byte_fallback_bpe(words: list[str]) -> PreTrainedTokenizerFast:
    """A SentencePiece-style BPE: Metaspace (▁) words, ASCII letters, and <0xHH> tokens for every other byte."""
    vocab = {EOS: 0, "<unk>": 1, **{f"<0x{b:02X}>": 2 + b for b in range(256)}}
    merges = []
    for char in "▁abcdefghijklmnopqrstuvwxyz":
        vocab.setdefault(char, len(vocab))
    for word in words:  # each word merged left to right
        for end in range(2, len(word) + 1):
            merges.append((word[: end - 1], word[end - 1]))
            vocab.setdefault(word[:end], len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS, unk_token="<unk>")


def ids(tokenizer: PreTrainedTokenizerFast, text: str) -> np.ndarray:
    return np.array(tokenizer(text, add_special_tokens=False)["input_ids"])


def pieces(tokenizer: PreTrainedTokenizerFast, token_ids) -> list[str]:  # noqa: ANN001
    return tokenizer.convert_ids_to_tokens([int(i) for i in token_ids])


STUDENT = byte_bpe(
    [("Ġ", "t"), ("Ġt", "h"), ("Ġth", "e"), ("Ġ", "c"), ("Ġc", "a"), ("Ġca", "t"), ("Ġ", "Ġ"), ("Ã", "©")]
)
TEACHER = byte_bpe([("Ġ", "t"), ("Ġt", "h"), ("Ġ", "c"), ("Ġc", "a"), ("Ġca", "t")])


def test_a_word_split_differently_is_one_span():
    student = ids(STUDENT, "a the cat")
    assert pieces(STUDENT, student) == ["a", "Ġthe", "Ġcat"]
    aligned = Aligner(STUDENT, TEACHER, 64).align(student)
    assert pieces(TEACHER, aligned.teacher_ids) == ["a", "Ġth", "e", "Ġcat"]
    # common boundaries after "a", "a the", "a the cat": span " the" = student row 1 / teacher rows 1–2
    assert aligned.boundary.tolist() == [0, 2, 3]
    assert aligned.span_start.tolist() == [-1, 1, 2]  # the first span holds token 0: nothing predicts it
    assert aligned.span_teacher.tolist() == [[-1, -1], [1, 2], [3, 3]]


def test_whitespace_tokens_merged_on_one_side_only():
    student = ids(STUDENT, "a  cat")  # "ĠĠ" is one student token; the teacher has "Ġ" + "Ġcat"
    assert pieces(STUDENT, student) == ["a", "Ġ", "Ġcat"]  # the pre-tokenizer keeps the last space with the word
    aligned = Aligner(STUDENT, TEACHER, 64).align(student)
    assert pieces(TEACHER, aligned.teacher_ids) == ["a", "Ġ", "Ġcat"]
    assert aligned.boundary.tolist() == [0, 1, 2]
    assert aligned.span_teacher.tolist() == [[-1, -1], [1, 1], [2, 2]]


def test_byte_fallback_tokens_join_their_character():
    teacher = byte_fallback_bpe(["▁caf"])
    assert token_bytes(teacher, "teacher")[teacher.convert_tokens_to_ids("<0xC3>")] == b"\xc3"
    student = ids(STUDENT, "café")
    assert pieces(STUDENT, student) == ["c", "a", "f", "Ã©"]
    aligned = Aligner(STUDENT, teacher, 64).align(student)
    # Metaspace prepends "▁" (one space the text does not have: allowed), é falls back to two byte tokens
    assert pieces(teacher, aligned.teacher_ids) == ["▁caf", "<0xC3>", "<0xA9>"]
    # "caf" ends both at byte 3; é ends both at byte 5; the teacher's <0xC3> ends inside é: no boundary there
    assert aligned.boundary.tolist() == [-1, -1, 0, 2]
    assert aligned.span_start.tolist() == [-1, -1, -1, 3]
    assert aligned.span_teacher[3].tolist() == [1, 2]


def test_separators_are_aligned_units():
    student = np.concatenate([ids(STUDENT, "a cat"), [STUDENT.eos_token_id], ids(STUDENT, "the")])
    teacher = byte_fallback_bpe(["▁a", "▁cat", "▁the"])
    aligned = Aligner(STUDENT, teacher, 64).align(student)
    assert pieces(STUDENT, student) == ["a", "Ġcat", EOS, "t", "h", "e"]
    assert pieces(teacher, aligned.teacher_ids) == ["▁a", "▁cat", EOS, "▁the"]  # its own separator; "▁" added, allowed
    assert aligned.boundary.tolist() == [0, 1, 2, -1, -1, 3]
    assert aligned.span_start.tolist() == [-1, 1, 2, -1, -1, 3]  # the separator is a span; "the" is one too
    assert aligned.span_teacher.tolist() == [[-1, -1], [1, 1], [2, 2], [-1, -1], [-1, -1], [3, 3]]


def test_text_past_the_last_common_boundary_belongs_to_no_span():
    student = ids(STUDENT, "a the cat")
    cut = Aligner(STUDENT, TEACHER, 2).align(student)  # the teacher holds 2 tokens: "a", "Ġth"
    assert pieces(TEACHER, cut.teacher_ids) == ["a", "Ġth"]
    assert cut.boundary.tolist() == [0, -1, -1] and (cut.span_start == -1).all()


def test_a_character_cut_at_the_block_edge_is_dropped():
    plain = byte_bpe([])  # é is two tokens Ã ©; a block may start between them
    block = ids(plain, "éa the")[1:]
    assert pieces(plain, block)[:2] == ["©", "a"]
    aligned = Aligner(plain, TEACHER, 64).align(block)
    assert pieces(TEACHER, aligned.teacher_ids) == ["a", "Ġth", "e"]  # the teacher sees the text from "a" on
    assert aligned.boundary[1] == 0 and aligned.span_start[1] == -1  # the dangling © ends no span


def test_a_lowercasing_teacher_is_refused():
    with pytest.raises(KinheritError, match="does not keep the text as is .*normalises the text"):
        Aligner(STUDENT, byte_bpe([], lowercase=True), 64)


def test_a_slow_tokenizer_is_refused():
    slow = SimpleNamespace(is_fast=False, name_or_path="slow-tok")
    with pytest.raises(KinheritError, match="slow-tok is a slow .* without character offsets"):
        Aligner(STUDENT, slow, 64)


def test_alignment_is_exact_on_real_bpes(tmp_path, cache_dir):
    """Two byte-level BPEs trained on the test corpus: every span spells the same text on both sides, the
    teacher's ids are its own tokenization of the block's text, and its token ends agree with the fast
    tokenizer's character offsets."""
    corpus = prepare_corpus(validate_config(_tiny_run(tmp_path, cache_dir, "llama")).data)
    student = load_tokenizer(corpus.tokenizer_dir)
    other = _tiny_run(tmp_path, cache_dir, "llama")
    other["data"]["tokenizer"]["train_vocab_size"] = 400
    teacher = load_tokenizer(prepare_corpus(validate_config(other).data).tokenizer_dir)
    aligner = Aligner(student, teacher, 128)
    blocks = PackedBlocks(corpus.train_path, corpus.dtype, 64)
    s_bytes, t_bytes = token_bytes(student, "student"), token_bytes(teacher, "teacher")
    covered = 0
    for index in range(0, len(blocks), max(1, len(blocks) // 40)):
        block = blocks[index]["input_ids"].numpy()
        aligned = aligner.align(block)
        text = b"".join(s_bytes[t] or b"" for t in block).decode("utf-8", errors="ignore")
        if EOS not in student.decode(block):  # a block inside one document: its text, re-tokenized whole
            assert aligned.teacher_ids.tolist() == teacher(text, add_special_tokens=False)["input_ids"][:128]
            encoding = teacher(text, add_special_tokens=False, return_offsets_mapping=True)
            char_ends = [end for _, end in encoding["offset_mapping"]]
            byte_ends = np.cumsum([len(t_bytes[t]) for t in encoding["input_ids"]])
            on_chars = [len(text[:e].encode()) for e in char_ends]
            assert all(
                b == c for b, c in zip(byte_ends, on_chars) if b in set(on_chars)
            )  # offsets agree where char-aligned
        for row in np.nonzero(aligned.span_start >= 0)[0]:
            first, last = aligned.span_teacher[row]
            spelled_s = b"".join(s_bytes[t] or b"\0" for t in block[aligned.span_start[row] : row + 1])
            spelled_t = b"".join(t_bytes[t] or b"\0" for t in aligned.teacher_ids[first : last + 1])
            assert spelled_s == spelled_t
            covered += row - aligned.span_start[row] + 1
    assert covered > 0.9 * 64 * len(range(0, len(blocks), max(1, len(blocks) // 40)))


def test_a_lone_prefix_space_token_does_not_take_the_separators_boundary():
    """After a separator, a Metaspace teacher writes "(x" as "▁" + "<0x28>" + "x": its added "▁" is no text (it ends
    where the separator ends), so it joins the next span instead of taking the separator's boundary."""
    teacher = byte_fallback_bpe(["▁a", "▁cat"])
    student = np.concatenate([ids(STUDENT, "a cat"), [STUDENT.eos_token_id], ids(STUDENT, "(x")])
    aligned = Aligner(STUDENT, teacher, 64).align(student)
    assert pieces(STUDENT, student) == ["a", "Ġcat", EOS, "(", "x"]
    assert pieces(teacher, aligned.teacher_ids) == ["▁a", "▁cat", EOS, "▁", "<0x28>", "x"]
    assert aligned.boundary.tolist() == [0, 1, 2, 4, 5]  # the separator's prediction follows the teacher's separator
    assert aligned.span_teacher.tolist() == [[-1, -1], [1, 1], [2, 2], [3, 4], [5, 5]]  # "▁" is read with "("


@pytest.mark.parametrize("piece", [2, 1 << 24])
def test_a_teacher_normalising_a_character_of_the_training_text_is_refused_at_start_up(piece):
    """The teachers below pass the start-up probe and spell most text as is; each changes one character: ’ (three
    byte tokens in the student's stream, a run that `piece` = 2 cuts across pieces) or { (one whole token)."""
    stream = np.concatenate([ids(STUDENT, "a cat"), [STUDENT.eos_token_id], ids(STUDENT, "it’s {the} cat")])
    assert pieces(STUDENT, ids(STUDENT, "’")) == ["â", "Ģ", "Ļ"]
    for char, message in (("’", "its tokens spell \"'\" for '’'"), ("{", "its tokens spell '(' for '{'")):
        aligner = Aligner(STUDENT, byte_bpe([], replace=(char, "'" if char == "’" else "(")), 64)  # the probe passes
        with pytest.raises(KinheritError, match="does not keep the text as is") as err:
            aligner.check_text(stream, piece=piece)
        assert message in str(err.value)
        aligner.check_text(stream[:3], piece=piece)  # "a cat<eos>": nothing it changes
    Aligner(STUDENT, TEACHER, 64).check_text(stream, piece=piece)

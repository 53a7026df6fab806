import json
import os
import subprocess
import sys

import numpy as np
import pytest
from transformers import AutoTokenizer

from kinherit.config import DataConfig
from kinherit.data import packing, sources
from kinherit.data.packing import prepare_corpus
from kinherit.data.split import contiguous_window, unit_hash
from kinherit.errors import KinheritError


def _docs_folder(tmp_path, n=20):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(n):
        (folder / f"doc{i:02d}.txt").write_text(f"document number {i}\n" + "some shared words here. " * (5 + i))
    return folder


def _config(sources, cache, **kw):
    kw = {"tokenizer": {"train_vocab_size": 300}, "val_fraction": 0.1, **kw}
    return DataConfig(sources=[str(s) for s in sources], seq_len=16, cache_dir=str(cache), **kw)


def _book(tmp_path, lines=4000):
    path = tmp_path / "book.txt"
    path.write_text("".join(f"Line {i}: the quick brown fox jumps over {i % 13} lazy dogs.\n" for i in range(lines)))
    return path


def test_packing_is_deterministic_and_separated(tmp_path):
    folder = _docs_folder(tmp_path)
    a = prepare_corpus(_config([folder], tmp_path / "c1"))
    b = prepare_corpus(_config([folder], tmp_path / "c2"))
    assert a.fingerprint == b.fingerprint and a.split == "contiguous"  # 20 files · 0.1 < 10 expected val documents
    for split in ("train", "val"):
        assert np.array_equal(a.tokens(split), b.tokens(split))
    assert a.train_documents >= 20 and a.val_documents >= 1
    eos = AutoTokenizer.from_pretrained(str(a.tokenizer_dir)).eos_token_id
    assert int((a.tokens("train") == eos).sum()) == a.train_documents  # one separator after each piece
    assert int((a.tokens("val") == eos).sum()) == a.val_documents
    assert a.tokens("train").dtype == np.uint16


def test_a_single_text_file_splits_into_a_contiguous_validation_window(tmp_path):
    path = _book(tmp_path)
    corpus = prepare_corpus(_config([path], tmp_path / "c", val_fraction=0.05, split_seed=1))
    text = path.read_text()
    a, b = contiguous_window(len(text), 0.05, 1, "book.txt")
    start, end = text.index("\n", a - 1) + 1, text.index("\n", b - 1) + 1
    tokenizer = AutoTokenizer.from_pretrained(str(corpus.tokenizer_dir))
    val = corpus.tokens("val")
    assert corpus.split == "contiguous" and corpus.val_documents == 1 and val[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(val[:-1].tolist()) == text[start:end]
    assert 0.04 < corpus.val_tokens / (corpus.train_tokens + corpus.val_tokens) < 0.06
    train = corpus.tokens("train")
    assert corpus.train_documents == 2 and tokenizer.decode(train.tolist()) == (
        text[:start] + tokenizer.eos_token + text[end:] + tokenizer.eos_token
    )


def test_streaming_in_tiny_blocks_and_batches_gives_the_same_tokens(tmp_path, monkeypatch):
    path = _book(tmp_path, 1500)
    reference = prepare_corpus(_config([path], tmp_path / "c1"))
    monkeypatch.setattr(sources, "BLOCK_BYTES", 300)
    monkeypatch.setattr(packing, "BATCH_BYTES", 700)
    streamed = prepare_corpus(_config([path], tmp_path / "c2", tokenizer={"path": str(reference.tokenizer_dir)}))
    for split in ("train", "val"):
        assert np.array_equal(reference.tokens(split), streamed.tokens(split))


def test_tokenizer_never_learns_from_validation_text(tmp_path):
    """A word that occurs only in validation documents never becomes a merge; in training text it does."""
    names = [f"d{i:03d}.txt" for i in range(150)]
    val_names = {n for n in names if unit_hash(0, n.encode()) < 0.1}
    assert 5 <= len(val_names) <= 30
    rare = "zqxjvb " * 30
    for rare_side, expect_merges in ((True, False), (False, True)):
        folder = tmp_path / f"docs-{rare_side}"
        folder.mkdir()
        for n in names:
            (folder / n).write_text(f"the cat sat on the mat {n}\n" + (rare if (n in val_names) == rare_side else ""))
        corpus = prepare_corpus(_config([folder], tmp_path / "c", split="documents"))
        assert corpus.val_documents == len(val_names)
        vocab = AutoTokenizer.from_pretrained(str(corpus.tokenizer_dir)).get_vocab()
        merged = [t for t in vocab if any(pair in t for pair in ("zq", "qx", "xj", "jv", "vb"))]
        assert bool(merged) == expect_merges, merged


def test_tokenizer_trains_on_a_bounded_sample(tmp_path, monkeypatch):
    seen = []
    real = packing.train_bpe
    monkeypatch.setattr(packing, "train_bpe", lambda docs, *a: real(seen.extend(docs) or iter(seen), *a))
    monkeypatch.setattr(sources, "BLOCK_BYTES", 1000)
    path = _book(tmp_path, 4000)  # ≈ 240 kB in ≈ 240 blocks
    prepare_corpus(_config([path], tmp_path / "c", tokenizer={"train_vocab_size": 300, "train_sample_mb": 0.05}))
    sampled = sum(len(t.encode()) for t in seen)
    assert 35_000 <= sampled < 51_000  # ≈ the budget, and never a block more
    first_lines = [int(t.split(":")[0].split()[-1]) for t in seen if t.startswith("Line")]
    assert max(first_lines) > 2000  # spread over the file, not its first 50 kB


def test_second_run_reuses_cache(tmp_path, monkeypatch):
    folder = _docs_folder(tmp_path)
    first = prepare_corpus(_config([folder], tmp_path / "c"))
    monkeypatch.setattr(packing, "pack", lambda *a: pytest.fail("re-tokenized a cached corpus"))
    assert prepare_corpus(_config([folder], tmp_path / "c")).root == first.root
    (folder / "doc00.txt").write_text("changed " * 40)  # a changed input builds a new entry
    monkeypatch.undo()
    assert prepare_corpus(_config([folder], tmp_path / "c")).fingerprint != first.fingerprint


_KILL_AFTER_FIRST_WRITE = """
import os, signal, sys
from kinherit.config import DataConfig
from kinherit.data import packing
flush = packing._SideWriter.flush
def flush_then_die(self):
    flush(self)
    if self.tokens:
        os.kill(os.getpid(), signal.SIGKILL)
packing._SideWriter.flush = flush_then_die
packing.BATCH_BYTES = 2000
packing.prepare_corpus(DataConfig.model_validate_json(sys.argv[1]))
"""


def test_a_killed_packing_job_leaves_no_entry_that_looks_complete(tmp_path):
    path = _book(tmp_path, 2000)
    config = _config([path], tmp_path / "c")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_AFTER_FIRST_WRITE, config.model_dump_json()],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    (leftover,) = (tmp_path / "c").iterdir()
    assert leftover.name.startswith(".tmp-") and (leftover / "train.bin").stat().st_size > 0
    assert not (leftover / "meta.json").exists()
    corpus = prepare_corpus(config)  # rebuilds from scratch and removes the dead job's leftover
    assert [p.name for p in (tmp_path / "c").iterdir()] == [corpus.fingerprint]
    clean = prepare_corpus(_config([path], tmp_path / "clean"))
    assert np.array_equal(corpus.tokens("train"), clean.tokens("train")) and corpus.train_tokens > 30_000


def test_an_empty_split_is_refused_with_the_sizes(tmp_path):
    path = tmp_path / "one-line.txt"
    path.write_text("a single line without any newline, so the window has no line start to begin at " * 20)
    with pytest.raises(
        KinheritError,
        match=r"validation split is empty: [\d,]+ tokens \(1 pieces\) went to train "
        r"and 0 to val \(data.split=contiguous",
    ):
        prepare_corpus(_config([path], tmp_path / "c"))
    assert not any((tmp_path / "c").iterdir())  # nothing cached


def test_jsonl_parquet_and_saved_dataset_sources(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    texts = [f"record {i}: " + "alpha beta gamma " * (3 + i % 5) for i in range(30)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    pq.write_table(pa.table({"text": texts}), tmp_path / "b.parquet")
    Dataset.from_dict({"text": texts}).save_to_disk(str(tmp_path / "saved"))
    corpus = prepare_corpus(_config([tmp_path / "a.jsonl", tmp_path / "b.parquet", tmp_path / "saved"], tmp_path / "c"))
    assert corpus.split == "documents" and corpus.train_documents + corpus.val_documents == 90
    val_texts = {t for t in texts if unit_hash(0, t.encode()) < 0.1}
    assert corpus.val_documents == 3 * len(val_texts)  # the same text lands on the same side in every source


def test_bad_sources_are_clear_errors(tmp_path):
    with pytest.raises(KinheritError, match="does not exist"):
        prepare_corpus(_config([tmp_path / "missing"], tmp_path / "c"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "blank.txt").write_text("   \n\n")
    (tmp_path / "empty" / "blank2.txt").write_text("\n")
    with pytest.raises(KinheritError, match="corpus .* is empty"):
        prepare_corpus(_config([tmp_path / "empty"], tmp_path / "c"))
    (tmp_path / "bad.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(KinheritError, match="no 'text' field .*set data.text_field"):
        prepare_corpus(_config([tmp_path / "bad.jsonl"], tmp_path / "c"))


def test_packing_memory_is_bounded_by_the_batch_not_the_corpus(tmp_path, monkeypatch):
    """The memory invariant behind a < 2 GiB `pretrain` on a 600 MB file: the encoder never gets more than a batch
    of text (BATCH_BYTES plus one reading block) nor a text longer than a block and its last line, and the Python
    heap (tracemalloc) peaks at a small multiple of the batch whatever the corpus size: ids travel as uint16
    arrays, not as Python int lists (36 bytes a token)."""
    import tracemalloc
    from pathlib import Path

    path = _book(tmp_path, 40_000)  # ≈ 2.3 MB, 36 batches of 64 kB
    tokenizer = prepare_corpus(_config([_book(tmp_path / "..", 500)], tmp_path / "tok")).tokenizer_dir
    monkeypatch.setattr(sources, "BLOCK_BYTES", 16 << 10)
    monkeypatch.setattr(packing, "BATCH_BYTES", 64 << 10)
    calls = []
    real = packing._encoder

    class Recording:
        def __init__(self, backend):
            self.backend = backend

        def __getattr__(self, name):
            return getattr(self.backend, name)

        def encode_batch_fast(self, texts, **kw):
            calls.append([len(t.encode()) for t in texts])
            return self.backend.encode_batch_fast(texts, **kw)

    monkeypatch.setattr(packing, "_encoder", lambda folder: (Recording(real(folder)[0]), real(folder)[1]))
    config = _config([path], tmp_path / "c", tokenizer={"path": str(tokenizer)})
    files = sources.resolve_sources(config.sources)
    out = Path(tmp_path / "out")
    out.mkdir()
    tracemalloc.start()
    stats = packing.pack(files, config, "contiguous", tokenizer, out)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert stats["train_tokens"] > 500_000 and len(calls) > 30
    assert max(sum(c) for c in calls) < (64 << 10) + (16 << 10) + 200
    assert max(max(c) for c in calls) < (16 << 10) + 200
    assert peak < 600_000, peak  # bytes: 0.39 MB measured; 1.04 MB when ids went through Python int lists

import json

import numpy as np
import pytest

from kinherit.config import DataConfig
from kinherit.data import packing
from kinherit.data.packing import prepare_corpus
from kinherit.data.sources import resolve_sources, stdlib_files
from kinherit.errors import KinheritError


def _docs_folder(tmp_path, n=20):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(n):
        (folder / f"doc{i:02d}.txt").write_text(f"document number {i}\n" + "some shared words here. " * (5 + i))
    return folder


def _config(sources, cache, **kw):
    return DataConfig(sources=[str(s) for s in sources], tokenizer={"train_vocab_size": 300}, seq_len=16,
                      val_fraction=0.1, cache_dir=str(cache), **kw)


def test_packing_is_deterministic_and_separated(tmp_path):
    folder = _docs_folder(tmp_path)
    a = prepare_corpus(_config([folder], tmp_path / "c1"))
    b = prepare_corpus(_config([folder], tmp_path / "c2"))
    assert a.fingerprint == b.fingerprint
    for split in ("train", "val"):
        assert np.array_equal(a.tokens(split), b.tokens(split))
    assert a.train_documents + a.val_documents == 20 and a.val_documents >= 1
    separator = json.loads((a.tokenizer_dir / "tokenizer_config.json").read_text())
    from transformers import AutoTokenizer

    eos = AutoTokenizer.from_pretrained(str(a.tokenizer_dir)).eos_token_id
    assert int((a.tokens("train") == eos).sum()) == a.train_documents  # one separator after each document
    assert a.tokens("train").dtype == np.uint16 and separator


def test_second_run_reuses_cache(tmp_path, monkeypatch):
    folder = _docs_folder(tmp_path)
    first = prepare_corpus(_config([folder], tmp_path / "c"))
    monkeypatch.setattr(packing, "_encode", lambda *a: pytest.fail("re-tokenized a cached corpus"))
    assert prepare_corpus(_config([folder], tmp_path / "c")).root == first.root
    (folder / "doc00.txt").write_text("changed " * 40)  # a changed input builds a new entry
    monkeypatch.undo()
    assert prepare_corpus(_config([folder], tmp_path / "c")).fingerprint != first.fingerprint


def test_jsonl_parquet_and_saved_dataset_sources(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    texts = [f"record {i}: " + "alpha beta gamma " * (3 + i % 5) for i in range(30)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    pq.write_table(pa.table({"text": texts}), tmp_path / "b.parquet")
    Dataset.from_dict({"text": texts}).save_to_disk(str(tmp_path / "saved"))
    corpus = prepare_corpus(_config([tmp_path / "a.jsonl", tmp_path / "b.parquet", tmp_path / "saved"], tmp_path / "c"))
    assert corpus.train_documents + corpus.val_documents == 90


def test_stdlib_source_excludes_tests():
    files = stdlib_files()
    assert len(files) > 300
    assert not any("test" in p.parts[:-1] for p in files) and not any("site-packages" in p.parts for p in files)
    assert len(resolve_sources(["stdlib"])) == len(files)


def test_bad_sources_are_clear_errors(tmp_path):
    with pytest.raises(KinheritError, match="does not exist"):
        prepare_corpus(_config([tmp_path / "missing"], tmp_path / "c"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "blank.txt").write_text("   \n\n")
    (tmp_path / "empty" / "blank2.txt").write_text("\n")
    with pytest.raises(KinheritError, match="corpus .* is empty"):
        prepare_corpus(_config([tmp_path / "empty"], tmp_path / "c"))
    (tmp_path / "bad.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(KinheritError, match="no 'text' field; set data.text_field"):
        prepare_corpus(_config([tmp_path / "bad.jsonl"], tmp_path / "c"))

import pytest

from kinherit.config import DataConfig
from kinherit.data import sources
from kinherit.data.sources import resolve_sources
from kinherit.data.split import check_document_split, contiguous_window, iter_chunks, split_mode, unit_hash
from kinherit.errors import KinheritError


def _lines(n):
    return "".join(f"line {i} " + "word " * (i % 7) + "\n" for i in range(n))


def _sides(files, config, mode):
    """Reassemble the chunk stream into (train text, val text, pieces per side)."""
    text = {False: [], True: []}
    pieces = {False: 0, True: 0}
    for chunk in iter_chunks(files, config, mode):
        text[chunk.val].append(chunk.text)
        pieces[chunk.val] += chunk.end and bool(chunk.text or text[chunk.val])
    return "".join(text[False]), "".join(text[True]), pieces


def test_one_file_splits_contiguously_at_line_starts(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "BLOCK_BYTES", 997)  # many blocks: the window edges fall inside blocks
    body = _lines(3000)
    path = tmp_path / "book.txt"
    path.write_text(body)
    config = DataConfig(sources=[str(path)], val_fraction=0.1, split_seed=3)
    files = resolve_sources(config.sources)
    assert split_mode(config, files) == "contiguous"
    train, val, _ = _sides(files, config, "contiguous")
    a, b = contiguous_window(len(body.encode()), 0.1, 3, "book.txt")
    start = body.index("\n", a - 1) + 1  # the window moves forward to the next line start
    end = body.index("\n", b - 1) + 1
    assert val == body[start:end] and train == body[:start] + body[end:]
    assert abs(len(val) / len(body) - 0.1) < 0.01 and val.startswith("line ") and val.endswith("\n")
    other, _, _ = _sides(files, config.model_copy(update={"split_seed": 4}), "contiguous")
    assert other != train  # the seed moves the window


def test_document_split_is_a_seeded_hash_per_file(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(400):
        (folder / f"d{i:03d}.txt").write_text(f"document {i}\n")
    config = DataConfig(sources=[str(folder)], val_fraction=0.1, split_seed=0)
    files = resolve_sources(config.sources)
    assert split_mode(config, files) == "documents"  # 400 · 0.1 ≥ 10 expected validation documents
    train, val, pieces = _sides(files, config, "documents")
    expected = {f"document {i}\n" for i in range(400) if unit_hash(0, f"d{i:03d}.txt".encode()) < 0.1}
    assert set(val.splitlines(keepends=True)) == expected and 25 <= len(expected) <= 55
    assert pieces == {False: 400 - len(expected), True: len(expected)}
    assert split_mode(config.model_copy(update={"val_fraction": 0.01}), files) == "contiguous"  # 4 expected: too few
    assert split_mode(config.model_copy(update={"max_documents": 60}), files) == "contiguous"  # only 60 files used


def test_records_split_by_content_hash(tmp_path):
    rows = [f"record {i % 50}" for i in range(200)]  # every text occurs 4 times
    (tmp_path / "r.jsonl").write_text("".join(f'{{"text": "{r}"}}\n' for r in rows))
    config = DataConfig(sources=[str(tmp_path / "r.jsonl")], val_fraction=0.2)
    files = resolve_sources(config.sources)
    assert split_mode(config, files) == "documents"
    chunks = list(iter_chunks(files, config, "documents"))
    side = {}
    for chunk in chunks:
        assert side.setdefault(chunk.text, chunk.val) == chunk.val  # duplicates never straddle the split
    assert 0 < sum(side.values()) < 50 and all(c.end for c in chunks)


def test_max_documents_counts_files_and_records(tmp_path):
    (tmp_path / "a.txt").write_text("alpha\n")
    (tmp_path / "b.jsonl").write_text("".join(f'{{"text": "rec {i}"}}\n' for i in range(10)))
    config = DataConfig(sources=[str(tmp_path / "a.txt"), str(tmp_path / "b.jsonl")], max_documents=4)
    texts = [c.text for c in iter_chunks(resolve_sources(config.sources), config, "documents") if c.text]
    assert texts == ["alpha\n", "rec 0", "rec 1", "rec 2"]


def test_a_document_split_that_leaves_a_side_empty_is_refused_up_front(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.txt").write_text("text\n")
    config = DataConfig(sources=[str(tmp_path / "*.txt")], split="documents", val_fraction=0.02)
    files = resolve_sources(config.sources)
    val = sum(unit_hash(0, f.key.encode()) < 0.02 for f in files)
    assert val == 0
    with pytest.raises(
        KinheritError, match="validation split would be empty: 0 of 3 files .* set data.split=contiguous"
    ):
        check_document_split(config, files)

import json

import pytest

from kinherit.data.sources import SourceFile, TextDecoder, iter_blocks, iter_records, resolve_sources, stdlib_files
from kinherit.errors import KinheritError


def test_stdlib_source_excludes_tests():
    files = stdlib_files()
    assert len(files) > 300
    assert not any("test" in p.parts[:-1] for p in files) and not any("site-packages" in p.parts for p in files)
    resolved = resolve_sources(["stdlib"])
    assert len(resolved) == len(files) and "json/decoder.py" in {f.key for f in resolved}


def test_binary_files_in_a_folder_are_skipped_with_a_warning_naming_them(tmp_path):
    (tmp_path / "notes.txt").write_text("plain text\n")
    (tmp_path / "noext").write_text("also text\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))
    (tmp_path / "model.bin").write_bytes(bytes(range(256)))
    for hidden in (".git/objects", "__pycache__"):
        (tmp_path / hidden).mkdir(parents=True)
        (tmp_path / hidden / "blob").write_bytes(bytes(16))
    with pytest.warns(UserWarning, match=r"skipped 2 binary file\(s\): image\.png, model\.bin$"):
        files = resolve_sources([str(tmp_path)])
    assert [f.key for f in files] == ["noext", "notes.txt"]
    with pytest.raises(KinheritError, match="model.bin' is a binary file"):
        resolve_sources([str(tmp_path / "model.bin")])


def test_glob_keys_are_relative_to_the_glob_base(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("a\n")
    assert [f.key for f in resolve_sources([str(tmp_path / "**" / "*.txt")])] == ["sub/a.txt"]
    monkeypatch.chdir(tmp_path)
    assert [f.key for f in resolve_sources(["sub/*.txt"])] == ["a.txt"]


def test_blocks_end_after_newlines_and_never_split_a_character(tmp_path):
    path = tmp_path / "t.txt"
    text = "".join(f"ligne {i} été\n" for i in range(200)) + "é" * 300  # a last line longer than a block
    path.write_text(text)
    blocks = list(iter_blocks(path, block_bytes=64))
    assert b"".join(b for _, b in blocks) == text.encode()
    assert [off for off, _ in blocks] == [sum(len(b) for _, b in blocks[:i]) for i in range(len(blocks))]
    assert all(b.endswith(b"\n") for _, b in blocks[:-5]) and all(len(b) <= 128 for _, b in blocks)
    for _, block in blocks:
        block.decode("utf-8")  # each block is valid UTF-8 on its own


def test_invalid_utf8_is_replaced_with_a_warning(tmp_path):
    decode = TextDecoder(tmp_path / "latin1.txt")
    with pytest.warns(UserWarning, match="latin1.txt is not valid UTF-8; undecodable bytes are read as U\\+FFFD"):
        assert decode("café\n".encode("latin-1")) == "caf\ufffd\n"
    assert decode(b"ok") == "ok"


@pytest.mark.parametrize("kind", ["json", "parquet", "arrow", "saved"])
def test_record_sources_stream_their_text_field(tmp_path, kind):
    import pyarrow as pa
    from datasets import Dataset

    texts = [f"row {i}" for i in range(2500)]  # more than one batch of RECORD_BATCH
    table = pa.table({"text": texts, "id": list(range(2500))})
    if kind == "json":
        path = tmp_path / "d.jsonl"
        path.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts)))
    elif kind == "parquet":
        import pyarrow.parquet as pq

        path = tmp_path / "d.parquet"
        pq.write_table(table, path)
    elif kind == "arrow":
        path = tmp_path / "d.arrow"
        with pa.ipc.new_stream(path, table.schema) as writer:
            writer.write_table(table)
    else:
        path = tmp_path / "saved"
        Dataset.from_dict({"text": texts}).save_to_disk(str(path))
    (item,) = resolve_sources([str(path)])
    assert item.kind == kind
    assert [t for batch in iter_records(item, "text") for t in batch] == texts
    with pytest.raises(KinheritError, match="no 'body' field .*set data.text_field"):
        next(iter_records(item, "body"))


def test_unreadable_records_are_one_line_errors(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n{not json\n')
    with pytest.raises(KinheritError, match="bad.jsonl: not readable as json records"):
        list(iter_records(SourceFile(path, "json", "bad.jsonl"), "text"))

"""Corpus sources → a deterministic stream of documents (one string each).

A source is one of: `stdlib` (this Python's own standard library `.py` files, test suites
excluded), a text file, a folder (all text files below it), a glob, a `.jsonl`/`.parquet` file with
a text field, or a folder written by `datasets.Dataset.save_to_disk`. Order is sorted and therefore
reproducible across machines with the same files.
"""

from __future__ import annotations

import glob
import hashlib
import json
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kinherit.errors import KinheritError

STDLIB = "stdlib"
TEXT_SUFFIXES = {".txt", ".md", ".rst", ".py", ".text", ".json", ".csv", ".tex", ".html", ".c", ".h", ""}
_STDLIB_SKIP = {"test", "tests", "idle_test", "site-packages", "__pycache__", "dist-packages"}


@dataclass(frozen=True)
class SourceFile:
    """One resolved input file and how to read it."""

    path: Path
    kind: str  # "text" | "jsonl" | "parquet" | "hf_dataset"

    def fingerprint(self) -> str:
        stat = self.path.stat()
        return f"{self.path}:{self.kind}:{stat.st_size}:{stat.st_mtime_ns}"


def stdlib_files() -> list[Path]:
    """The standard library's `.py` files, without test suites and installed packages."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(
        p for p in root.rglob("*.py") if not _STDLIB_SKIP.intersection(p.relative_to(root).parts[:-1])
    )


def _is_hf_dataset(folder: Path) -> bool:
    return (folder / "dataset_info.json").is_file() or (folder / "dataset_dict.json").is_file()


def _classify(path: Path) -> SourceFile:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return SourceFile(path, "jsonl")
    if suffix == ".parquet":
        return SourceFile(path, "parquet")
    return SourceFile(path, "text")


def _files_in(folder: Path) -> list[SourceFile]:
    if _is_hf_dataset(folder):
        return [SourceFile(folder, "hf_dataset")]
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [_classify(p) for p in files if p.suffix.lower() in TEXT_SUFFIXES | {".jsonl", ".parquet"}]


def resolve_sources(sources: list[str]) -> list[SourceFile]:
    """Expand every source spec to concrete files; a spec that matches nothing is an error."""
    resolved: list[SourceFile] = []
    for spec in sources:
        if spec == STDLIB:
            found = [SourceFile(p, "text") for p in stdlib_files()]
        elif any(ch in spec for ch in "*?["):
            found = [_classify(Path(p)) for p in sorted(glob.glob(spec, recursive=True)) if Path(p).is_file()]
        else:
            path = Path(spec).expanduser()
            if not path.exists():
                raise KinheritError(f"data source {spec!r} does not exist; give a file, folder, glob or 'stdlib'")
            found = _files_in(path) if path.is_dir() else [_classify(path)]
        if not found:
            raise KinheritError(f"data source {spec!r} matched no text files")
        resolved.extend(found)
    return resolved


def sources_fingerprint(files: list[SourceFile]) -> str:
    """Changes when any file is added, removed, resized or touched."""
    digest = hashlib.sha256()
    for item in files:
        digest.update(item.fingerprint().encode())
    return digest.hexdigest()[:16]


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _jsonl_texts(path: Path, field: str) -> Iterator[str]:
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise KinheritError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
            if field not in record:
                raise KinheritError(f"{path}:{lineno}: no {field!r} field; set data.text_field")
            yield str(record[field])


def _parquet_texts(path: Path, field: str) -> Iterator[str]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if field not in table.column_names:
        raise KinheritError(f"{path}: no {field!r} column (has {table.column_names}); set data.text_field")
    yield from (str(t) for t in table.column(field).to_pylist() if t is not None)


def _hf_dataset_texts(path: Path, field: str) -> Iterator[str]:
    from datasets import DatasetDict, load_from_disk

    data = load_from_disk(str(path))
    splits = [data[name] for name in sorted(data)] if isinstance(data, DatasetDict) else [data]
    for split in splits:
        if field not in split.column_names:
            raise KinheritError(f"{path}: no {field!r} column (has {split.column_names}); set data.text_field")
        yield from (str(t) for t in split[field] if t is not None)


def iter_documents(files: list[SourceFile], text_field: str = "text") -> Iterator[str]:
    """Every non-empty document of every file, in order."""
    for item in files:
        if item.kind == "text":
            docs: Iterator[str] = iter([_read_text(item.path)])
        elif item.kind == "jsonl":
            docs = _jsonl_texts(item.path, text_field)
        elif item.kind == "parquet":
            docs = _parquet_texts(item.path, text_field)
        else:
            docs = _hf_dataset_texts(item.path, text_field)
        yield from (doc for doc in docs if doc.strip())

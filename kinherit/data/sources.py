"""Corpus sources → files, and readers that stream each file's text in bounded pieces.

A source is one of: `stdlib` (this Python's own standard library `.py` files, test suites
excluded), a text file, a folder (every file below it except hidden ones and `__pycache__/`), a glob, a
`.jsonl`/`.json`-lines, `.parquet` or `.arrow` file with a text field (read by
`datasets.load_dataset(..., streaming=True)`), or a folder written by `datasets.Dataset.save_to_disk` (read batch by
batch from its memory map). Order is sorted and therefore reproducible across machines with the same files.

Nothing is ever read whole: text files are read in blocks of about `BLOCK_BYTES`, cut after a
newline; record files in batches of `RECORD_BATCH` rows. Files found in a folder or glob whose first
`SNIFF_BYTES` contain a NUL byte are binary: they are skipped with a warning naming them. Text that
is not valid UTF-8 is decoded with U+FFFD replacing the undecodable bytes, with a warning naming the file.
"""

from __future__ import annotations

import glob
import hashlib
import sysconfig
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import takewhile
from pathlib import Path

from kinherit.errors import KinheritError

STDLIB = "stdlib"
BLOCK_BYTES = 1 << 18  # the Rust encoder's working memory grows with each text's length: see kinherit.data.packing
SNIFF_BYTES = 8192
RECORD_BATCH = 1024
RECORD_BUILDERS = {".jsonl": "json", ".parquet": "parquet", ".arrow": "arrow"}
_STDLIB_SKIP = {"test", "tests", "idle_test", "site-packages", "__pycache__", "dist-packages"}


@dataclass(frozen=True)
class SourceFile:
    """One resolved input: `kind` is "text", a `datasets` builder name ("json", "parquet", "arrow") or "saved".

    `key` names the file relative to its source spec (stable when the corpus moves); the split hashes it.
    """

    path: Path
    kind: str
    key: str

    @property
    def nbytes(self) -> int:
        if self.path.is_dir():
            return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        return self.path.stat().st_size

    @property
    def is_records(self) -> bool:
        return self.kind != "text"

    def fingerprint(self) -> str:
        stat = self.path.stat()
        return f"{self.path}:{self.kind}:{self.key}:{self.nbytes}:{stat.st_mtime_ns}"


def stdlib_files() -> list[Path]:
    """The standard library's `.py` files, without test suites and installed packages."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if not _STDLIB_SKIP.intersection(p.relative_to(root).parts[:-1]))


def _is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_info.json").is_file() or (folder / "dataset_dict.json").is_file()


def _hidden(relative: Path) -> bool:
    """Hidden files and folders (`.git/`, `.cache`) and `__pycache__/` are not part of a folder source."""
    return any(part.startswith(".") or part == "__pycache__" for part in relative.parts)


def is_binary(path: Path) -> bool:
    """A file is binary when its first SNIFF_BYTES contain a NUL byte (as git and grep decide)."""
    with path.open("rb") as handle:
        return b"\x00" in handle.read(SNIFF_BYTES)


def _classify(path: Path, key: str) -> SourceFile:
    return SourceFile(path, RECORD_BUILDERS.get(path.suffix.lower(), "text"), key)


def _text_or_records(paths: list[Path], keys: list[str], spec: str) -> list[SourceFile]:
    """Classify found files; binary text files are skipped with one warning naming them."""
    found, binary = [], []
    for path, key in zip(paths, keys):
        item = _classify(path, key)
        if item.kind == "text" and is_binary(path):
            binary.append(key)
        else:
            found.append(item)
    if binary:
        names = ", ".join(binary[:5]) + (f" and {len(binary) - 5} more" if len(binary) > 5 else "")
        warnings.warn(f"data source {spec!r}: skipped {len(binary)} binary file(s): {names}", stacklevel=3)
    return found


def resolve_sources(sources: list[str]) -> list[SourceFile]:
    """Expand every source spec to concrete files; a spec that matches nothing is an error."""
    resolved: list[SourceFile] = []
    for spec in sources:
        if spec == STDLIB:
            root = Path(sysconfig.get_paths()["stdlib"])
            found = [SourceFile(p, "text", str(p.relative_to(root))) for p in stdlib_files()]
        elif any(ch in spec for ch in "*?["):
            paths = [Path(p) for p in sorted(glob.glob(spec, recursive=True)) if Path(p).is_file()]
            base = Path(*takewhile(lambda part: not glob.has_magic(part), Path(spec).parts))
            found = _text_or_records(paths, [str(p.relative_to(base)) for p in paths], spec)
        else:
            path = Path(spec).expanduser()
            if not path.exists():
                where = "" if path.is_absolute() else f" in {Path.cwd()}"
                raise KinheritError(
                    f"data source {spec!r} does not exist{where}; give a file, folder, glob or 'stdlib'"
                )
            if path.is_dir() and _is_saved_dataset(path):
                found = [SourceFile(path, "saved", path.name)]
            elif path.is_dir():
                paths = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
                found = _text_or_records(paths, [str(p.relative_to(path)) for p in paths], spec)
            else:
                found = [_classify(path, path.name)]
                if found[0].kind == "text" and is_binary(path):
                    raise KinheritError(
                        f"data source {spec!r} is a binary file (it contains NUL bytes); give a text file"
                    )
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


def _utf8_tail(data: bytes) -> int:
    """Length of an incomplete UTF-8 sequence at the end of `data` (0 to 3 bytes)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte (or ASCII): is its sequence complete?
            need = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            return back if need > back else 0
    return 0


def iter_blocks(path: Path, block_bytes: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) blocks of a file, each ending after a newline when one comes within another block.

    Memory is O(block_bytes) (default BLOCK_BYTES) whatever the file size; a line longer than a block
    is cut at a UTF-8 character boundary instead.
    """
    block_bytes = block_bytes or BLOCK_BYTES
    with path.open("rb") as handle:
        offset, carry = 0, b""
        while True:
            chunk = handle.read(block_bytes)
            data = carry + chunk
            if not data:
                return
            if chunk and not data.endswith(b"\n"):
                data += handle.readline(block_bytes)
            tail = _utf8_tail(data) if chunk and not data.endswith(b"\n") else 0
            data, carry = (data[: len(data) - tail], data[len(data) - tail :]) if tail else (data, b"")
            yield offset, data
            offset += len(data)


class TextDecoder:
    """Strict UTF-8 decoding with a documented fallback: undecodable bytes become U+FFFD, and the file is named once."""

    def __init__(self, path: Path):
        self.path, self.warned = path, False

    def __call__(self, data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            if not self.warned:
                warnings.warn(f"{self.path} is not valid UTF-8; undecodable bytes are read as U+FFFD", stacklevel=2)
                self.warned = True
            return data.decode("utf-8", errors="replace")


def iter_records(item: SourceFile, field: str) -> Iterator[list[str | None]]:
    """Batches of the `field` column of a record file or saved dataset, streamed (never loaded whole)."""
    from datasets import DatasetDict, load_dataset, load_from_disk

    if item.kind == "saved":
        data = load_from_disk(str(item.path))  # memory-mapped Arrow
        splits = [data[name] for name in sorted(data)] if isinstance(data, DatasetDict) else [data]
    else:
        splits = [load_dataset(item.kind, data_files=str(item.path), split="train", streaming=True)]
    try:
        for split in splits:
            for batch in split.iter(batch_size=RECORD_BATCH):
                if field not in batch:
                    raise KinheritError(f"{item.path}: no {field!r} field (has {sorted(batch)}); set data.text_field")
                yield batch[field]
    except (ValueError, OSError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise KinheritError(f"{item.path}: not readable as {item.kind} records ({str(err).splitlines()[0]})") from None

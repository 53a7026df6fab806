"""Task data for sequence classification: the built-in `stdlib-packages` task, or the user's files.

Built-in task (no download): a snippet of `snippet_lines` consecutive non-blank source lines from one
of the standard library's top-level packages (`kinherit.data.sources.stdlib_files()`); the label is
the package. Snippets are non-overlapping windows. The split is by file: each package's files are
shuffled with `seed` and the first ones go to validation until it has `val_per_class` snippets, so no
file contributes to both splits. Every class gets exactly `train_per_class` training and
`val_per_class` validation snippets (balanced).

User files: CSV or JSONL with a text and a label column, or a `datasets.save_to_disk` folder
(a DatasetDict's `train`/`validation` splits, or one Dataset).
"""

from __future__ import annotations

import csv
import json
import random
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from kinherit.data.sources import stdlib_files
from kinherit.errors import KinheritError

STDLIB_TASK = "stdlib-packages"
DEFAULT_PACKAGES = ("asyncio", "email", "unittest", "xml")
"""Each yields ≥ 478 training snippets of 6 lines once ≥ 50 are held out, whatever the seed (Python 3.11), so the
default 200 / 50 per class always fit (`json`, the default before, yields as few as 74)."""


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: list[int]  # indices into TaskData.label_names

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class TaskData:
    train: Split
    validation: Split
    label_names: list[str]


def package_files(packages: list[str]) -> dict[str, list[Path]]:
    """The `.py` files of each top-level stdlib package (test suites excluded)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found: dict[str, list[Path]] = {package: [] for package in packages}
    for path in stdlib_files():
        parts = path.relative_to(root).parts
        if len(parts) > 1 and parts[0] in found:
            found[parts[0]].append(path)
    for package, files in found.items():
        if not files:
            raise KinheritError(f"data.packages: {package!r} is not a package of this Python's standard library")
    return found


def snippets_of(files: list[Path], snippet_lines: int) -> list[str]:
    """All non-overlapping `snippet_lines`-line windows of the files' non-blank lines."""
    snippets = []
    for path in files:
        lines = [
            line.rstrip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()
        ]
        snippets += [
            "\n".join(lines[i : i + snippet_lines]) for i in range(0, len(lines) - snippet_lines + 1, snippet_lines)
        ]
    return snippets


def _split_by_file(files: list[Path], snippet_lines: int, val_needed: int, seed: int) -> tuple[list[str], list[str]]:
    """(validation, training) snippets, each shuffled; files are shuffled and filled into validation first."""
    rng = random.Random(f"{seed}:{files[0].parent.name}")
    order = sorted(files)
    rng.shuffle(order)
    held_out: list[str] = []
    training: list[str] = []
    for path in order:
        (held_out if len(held_out) < val_needed else training).extend(snippets_of([path], snippet_lines))
    rng.shuffle(held_out)
    rng.shuffle(training)
    return held_out, training


def stdlib_packages_task(
    packages: list[str], train_per_class: int, val_per_class: int, snippet_lines: int, seed: int
) -> TaskData:
    """Balanced package-classification data; label i is `packages[i]`."""
    if len(set(packages)) != len(packages) or len(packages) < 2:
        raise KinheritError(f"data.packages must name at least two different packages, got {packages}")
    train, val = Split([], []), Split([], [])
    files = package_files(packages)
    for label, package in enumerate(packages):
        held_out, training = _split_by_file(files[package], snippet_lines, val_per_class, seed)
        if len(held_out) < val_per_class or len(training) < train_per_class:
            raise KinheritError(
                f"package {package!r} yields {len(held_out)} validation and {len(training)} training snippets of "
                f"{snippet_lines} lines (split by file), fewer than val_per_class={val_per_class} / "
                f"train_per_class={train_per_class}; lower them or data.snippet_lines, or pick larger packages in "
                "data.packages"
            )
        for split, chosen in ((train, training[:train_per_class]), (val, held_out[:val_per_class])):
            split.texts.extend(chosen)
            split.labels.extend([label] * len(chosen))
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)  # interleave classes so any prefix is roughly balanced
    train = Split([train.texts[i] for i in order], [train.labels[i] for i in order])
    return TaskData(train, val, list(packages))


def _read_records(path: Path, text_field: str, label_field: str, split: str | None) -> list[tuple[str, str]]:
    """(text, label) pairs of a CSV, JSONL or save_to_disk source; labels as strings."""
    if not path.exists():
        raise KinheritError(f"task data {path} does not exist; give a .csv, .jsonl or datasets.save_to_disk folder")
    if path.is_dir():
        from datasets import DatasetDict, load_from_disk

        data = load_from_disk(str(path))
        if isinstance(data, DatasetDict):
            if split not in data:
                raise KinheritError(f"{path} has splits {sorted(data)}, not {split!r}")
            data = data[split]
        rows = data.to_list()
    elif path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    elif path.suffix.lower() == ".jsonl":
        rows = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise KinheritError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
    else:
        raise KinheritError(f"task data {path}: use a .csv or .jsonl file or a datasets.save_to_disk folder")
    for number, row in enumerate(rows, 1):
        for field, key in ((text_field, "data.text_field"), (label_field, "data.label_field")):
            if field not in row:
                raise KinheritError(f"{path}: record {number} has no {field!r} field (has {sorted(row)}); set {key}")
    if not rows:
        raise KinheritError(f"task data {path} holds no records")
    return [(str(row[text_field]), str(row[label_field])) for row in rows]


def file_task(
    train: str, validation: str | None, text_field: str, label_field: str, val_fraction: float, seed: int
) -> TaskData:
    """Task data from files; without `validation`, a seeded `val_fraction` of `train` is held out.
    Label names are the sorted distinct training labels."""
    records = _read_records(Path(train), text_field, label_field, "train")
    if validation is not None:
        held_out = _read_records(Path(validation), text_field, label_field, "validation")
    else:
        order = list(range(len(records)))
        random.Random(seed).shuffle(order)
        cut = max(1, int(round(val_fraction * len(records))))
        held_out, records = [records[i] for i in order[:cut]], [records[i] for i in order[cut:]]
    names = sorted({label for _, label in records})
    if len(names) < 2:
        raise KinheritError(f"task data {train} has {len(names)} distinct label(s); classification needs two or more")
    unknown = sorted({label for _, label in held_out} - set(names))
    if unknown:
        raise KinheritError(f"validation labels {unknown[:5]} never occur in the training data {train}")
    index = {name: i for i, name in enumerate(names)}

    def split(rows: list[tuple[str, str]]) -> Split:
        return Split([t for t, _ in rows], [index[label] for _, label in rows])

    return TaskData(split(records), split(held_out), names)

"""`run.json`, where a run's inputs came from: its validation data, its weights, its teacher, how it ran.

Written atomically by the main process when a run starts (and again on resume):
    data          the validation data's fingerprint: sources as given and as absolute roots, the resolved
                  split rule, split_seed, val_fraction, max_documents, text_field, the tokenizer's vocabulary
                  signature (sha256), the corpus cache fingerprint and the sha256 of the packed validation tokens
    lineage       one link per input model: role (`model.from`, `teacher`, `teacher.cache`), absolute path,
                  the grown folder's source or the cache's teacher, and the pre-training FLOPs behind it
                  (`sunk_flops`: that run's total plus its own lineage, None for a model no kinherit run produced)
    distributed   world size, accelerate's distributed_type, and where the teacher runs

Two runs are comparable when their validation fingerprints are equal (`validation_differences`). The compute
sunk into a run is the total FLOPs of every kinherit run its links lead to, walked recursively, each run
counted once (`Ancestors`); a link whose run folder lost its metrics is an error, never a silent 0. A run whose
ancestors trained on another split of a corpus it validates on is refused (`check_leakage`).
"""

from __future__ import annotations

import hashlib
import json
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinherit.errors import KinheritError
from kinherit.io import write_json
from kinherit.metrics.log import METRICS_FILE, read_metrics

RUN_FILE = "run.json"
SPLIT_KEYS = ("split", "split_seed", "val_fraction", "text_field", "roots")
"""The fields that decide which text lands on which side (max_documents only through the resolved `split`)."""
VALIDATION_KEYS = (
    "sources",
    "split",
    "split_seed",
    "val_fraction",
    "max_documents",
    "text_field",
    "tokenizer",
    "val_sha256",
)
"""The fields that make up the validation fingerprint; the last one is decisive, the others name a difference."""


def read_run_record(run_dir: str | Path) -> dict[str, Any] | None:
    """The run folder's `run.json`, or None when it has none."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise KinheritError(f"{path} is not valid JSON; the run record is damaged") from None


def write_run_record(run_dir: str | Path, record: dict[str, Any]) -> None:
    write_json(Path(run_dir) / RUN_FILE, record)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def source_roots(sources: list[str]) -> list[str]:
    """Each source spec as an absolute path (`stdlib` as the standard library's folder; a glob up to its first
    wildcard)."""
    roots = []
    for spec in sources:
        if spec == "stdlib":
            roots.append(str(Path(sysconfig.get_paths()["stdlib"]).resolve()))
            continue
        parts = Path(spec).expanduser().parts
        fixed = [p for p in parts[: next((i for i, p in enumerate(parts) if any(c in p for c in "*?[")), len(parts))]]
        roots.append(str(Path(*fixed).resolve() if fixed else Path.cwd().resolve()))
    return roots


def data_record(
    data: Any, split: str, corpus_fingerprint: str, tokenizer_signature: str, val_path: Path
) -> dict[str, Any]:
    """The `data` block of run.json (`data` is a `config.DataConfig`, `split` the resolved rule)."""
    return {
        "sources": list(data.sources),
        "roots": source_roots(data.sources),
        "split": split,
        "split_seed": data.split_seed,
        "val_fraction": data.val_fraction,
        "max_documents": data.max_documents,
        "text_field": data.text_field,
        "tokenizer": hashlib.sha256(tokenizer_signature.encode()).hexdigest()[:16],
        "corpus": corpus_fingerprint,
        "val_sha256": file_sha256(val_path)[:16],
    }


def validation_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The validation-fingerprint fields in which two `data` blocks differ (empty: same validation data)."""
    return [key for key in VALIDATION_KEYS if a.get(key) != b.get(key)]


# --- lineage --------------------------------------------------------------------------------------


def run_of(model_dir: Path) -> tuple[Path, int | None] | None:
    """The run folder that produced `model_dir` and the step it was taken at (None: the end), or None when no
    kinherit run wrote it: `<run>/model` or `<run>/checkpoints/checkpoint-N`."""
    if model_dir.name.startswith("checkpoint-") and model_dir.parent.name == "checkpoints":
        run, step = model_dir.parent.parent, int(model_dir.name.split("-")[-1])
    else:
        run, step = model_dir.parent, None
    return (run, step) if (run / METRICS_FILE).is_file() or (run / RUN_FILE).is_file() else None


def _growth_source(model_dir: Path) -> Path | None:
    growth = model_dir / "growth.json"
    if not growth.is_file():
        return None
    return Path(json.loads(growth.read_text())["source"])


def _cache_teacher(cache_dir: Path) -> Path | None:
    meta = cache_dir / "meta.json"
    if not meta.is_file():
        return None
    return Path(json.loads(meta.read_text())["teacher"]["path"])


def model_link(role: str, path: str | Path) -> dict[str, Any]:
    """One lineage link to a model folder (a grown folder links on to its source; a cache to its teacher)."""
    path = Path(path).resolve()
    link: dict[str, Any] = {"role": role, "path": str(path)}
    if role == "teacher.cache":
        teacher = _cache_teacher(path)
        link["teacher"] = None if teacher is None else str(teacher)
    elif (source := _growth_source(path)) is not None:
        link["source"] = str(source)
    link["sunk_flops"] = Ancestors.of_links([link]).known_flops()
    return link


def lineage_links(config: Any) -> list[dict[str, Any]]:
    """Links of a `config.RunConfig`: model.from, teacher.path, teacher.cache."""
    links = []
    if config.model.from_ is not None:
        links.append(model_link("model.from", config.model.from_))
    if config.teacher is not None and config.teacher.path is not None:
        links.append(model_link("teacher", config.teacher.path))
    if config.teacher is not None and config.teacher.cache is not None:
        links.append(model_link("teacher.cache", config.teacher.cache))
    return links


@dataclass
class Ancestors:
    """Every kinherit run whose weights flowed into a run (through its teacher, cache, model.from or growth
    source, recursively; each run once, with the step its model was taken at, None for the end), and the model
    folders no kinherit run produced."""

    runs: dict[Path, int | None] = field(default_factory=dict)
    external: list[str] = field(default_factory=list)

    @classmethod
    def of_links(cls, links: list[dict[str, Any]], where: str = "this run") -> Ancestors:
        found = cls()
        for link in links:
            found._add_link(link, where)
        return found

    @classmethod
    def of_run(cls, run_dir: Path) -> Ancestors:
        """The ancestors recorded in the run's run.json (a run without one has no recorded lineage)."""
        record = read_run_record(run_dir)
        return cls.of_links((record or {}).get("lineage", []), str(run_dir))

    def _add_link(self, link: dict[str, Any], where: str) -> None:
        if link["role"] == "teacher.cache":
            if link.get("teacher") is None:
                raise KinheritError(
                    f"lineage of {where}: teacher.cache {link['path']} records no teacher; its pre-training cannot "
                    "be counted"
                )
            self._add_model(Path(link["teacher"]), where, f"the teacher of cache {link['path']}")
        elif link.get("source") is not None:
            self._add_model(Path(link["source"]), where, f"the growth source of {link['path']}")
        else:
            self._add_model(Path(link["path"]), where, f"{link['role']} {link['path']}")

    def _add_model(self, model_dir: Path, where: str, what: str) -> None:
        found = run_of(model_dir)
        if found is None:
            if not model_dir.exists():
                raise KinheritError(f"lineage of {where}: {what} no longer exists; its pre-training cannot be counted")
            self.external.append(str(model_dir))
            return
        run, step = found
        run = run.resolve()
        if run in self.runs:
            return
        if not read_metrics(run / METRICS_FILE):
            raise KinheritError(
                f"lineage of {where}: {what} comes from run {run}, whose {METRICS_FILE} is missing or empty; "
                "its pre-training cannot be counted (restore the file)"
            )
        self.runs[run] = step
        for link in (read_run_record(run) or {}).get("lineage", []):
            self._add_link(link, str(run))

    def flops(self) -> float:
        """Total training FLOPs of every ancestor run (teacher forward passes included), up to the step used."""
        total = 0.0
        for run, step in self.runs.items():
            events = [
                e for e in read_metrics(run / METRICS_FILE) if "flops" in e and (step is None or e["step"] <= step)
            ]
            total += float(events[-1]["flops"]) if events else 0.0
        return total

    def known_flops(self) -> float | None:
        """`flops()`, or None when a model folder no kinherit run produced is among the ancestors."""
        return None if self.external else self.flops()


def _overlap(a: str, b: str) -> bool:
    pa, pb = Path(a), Path(b)
    return pa == pb or pa in pb.parents or pb in pa.parents


def check_leakage(data: dict[str, Any], ancestors: Ancestors) -> None:
    """Refuse a run whose teacher or initial weights (or theirs, recursively) were trained on another
    train/validation split of a corpus this run shares: text this run validates on may be in their training
    data. Same split = same resolved rule, split_seed, val_fraction and text_field, and every shared file
    reached through the same source root (a file's key, which the split hashes, is relative to its root)."""
    for run in ancestors.runs:
        theirs = (read_run_record(run) or {}).get("data")
        if theirs is None:
            continue
        shared = [(a, b) for a in data["roots"] for b in theirs.get("roots", []) if _overlap(a, b)]
        if not shared:
            continue
        differ = [
            f"{key} {theirs.get(key)!r} vs {data[key]!r}"
            for key in ("split", "split_seed", "val_fraction", "text_field")
            if theirs.get(key) != data[key]
        ]
        differ += [f"source {b} vs {a}" for a, b in shared if a != b][:2]
        if differ:
            raise KinheritError(
                f"{run} trained on the corpus this run validates on ({shared[0][0]}) with another train/validation "
                f"split ({', '.join(differ)}): its training text may include this run's validation text, so the "
                "validation loss would be optimistic; use the same data.split, split_seed, val_fraction, "
                "text_field and source paths, or validate on text it never saw"
            )

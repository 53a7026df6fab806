"""An existing model named by `kinherit plan --have DIR`: its shape from config.json and how long it was trained from
kinherit's run records, never its weights."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kinherit.arch.catalog import detect
from kinherit.arch.shape import read_shape
from kinherit.errors import KinheritError
from kinherit.hf_folder import find_tokenizer, read_config, vocabulary_signature
from kinherit.metrics.log import METRICS_FILE, read_metrics


@dataclass(frozen=True)
class Existing:
    """A --have folder: its family, `model:` sizes, and the tokens it was trained on (None: no record)."""

    path: str
    family: str
    sizes: dict[str, int]
    tokens: int | None
    record: str | None  # the metrics.jsonl the tokens come from


def trained_tokens(folder: Path) -> tuple[int | None, str | None]:
    """Tokens of the run that wrote `folder` (the last `tokens` in metrics.jsonl, in the folder or its parent, the
    run folder of `<run>/model`), plus those of the model it was grown from (growth.json's `source`), recursively."""
    tokens, record = None, None
    for run in (folder, folder.parent):
        if (run / METRICS_FILE).is_file():
            seen = [e["tokens"] for e in read_metrics(run / METRICS_FILE) if "tokens" in e]
            tokens, record = (int(seen[-1]) if seen else None), str(run / METRICS_FILE)
            break
    growth = folder / "growth.json"
    if growth.is_file():
        source = json.loads(growth.read_text()).get("source")
        if source and Path(source).is_dir():
            before, _ = trained_tokens(Path(source))
            if before is not None:
                tokens = (tokens or 0) + before
    return tokens, record


def read_existing(folder: str, family: str, vocab: int, tokenizer_path: str | None) -> Existing:
    """The --have folder `folder`, refused (one line) when missing, of another family than `family`, or with another
    vocabulary than the config's (`vocab` tokens; the tokenizer at `tokenizer_path` when the config names one)."""
    path = Path(folder)
    if not path.is_dir():
        raise KinheritError(f"--have {folder}: not a folder (in {Path.cwd()})")
    config = read_config(path, "--have")
    spec, _ = detect(config)
    if spec.name != family:
        raise KinheritError(
            f"--have {folder} is a {spec.name} model and the config's model.family is {family}: growth and KI "
            "here need the same family; name a model of that family"
        )
    if tokenizer_path is not None:
        own, theirs = find_tokenizer(path), find_tokenizer(tokenizer_path)
        if own is None or theirs is None or vocabulary_signature(own) != vocabulary_signature(theirs):
            raise KinheritError(
                f"--have {folder} was trained with another tokenizer than data.tokenizer.path {tokenizer_path}; set "
                f"data.tokenizer.path to {folder}"
            )
    elif config.vocab_size != vocab:
        raise KinheritError(
            f"--have {folder} embeds {config.vocab_size} tokens and the config's tokenizer {vocab}: another "
            f"tokenizer; set data.tokenizer.path to {folder} (its own tokenizer)"
        )
    tokens, record = trained_tokens(path)
    return Existing(str(path), family, read_shape(spec, config).model_sizes(), tokens, record)

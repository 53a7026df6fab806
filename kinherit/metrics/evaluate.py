"""`kinherit eval MODEL --data FILE`: a model folder's loss and perplexity on text it never trained on, packed
as `pretrain` packs (the folder's own tokenizer, no special tokens, a separator after each document, the
stream cut into non-overlapping blocks of seq_len tokens, a last partial block dropped), and a short seeded
sample for reports (`SAMPLING`).

loss = Σ_blocks Σ_predicted −log p(token) / (number of predicted tokens): every position after the first of
each block for a causal LM, the masked positions (BERT masking seeded by `seed`) for a masked LM. For a causal
LM whose blocks all hold seq_len tokens this is the `val_loss` a run logs on the same blocks.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from kinherit.config import DataConfig, read_yaml
from kinherit.data.dataset import IGNORE_INDEX, MaskingSpec, PackedBlocks
from kinherit.data.sources import resolve_sources
from kinherit.data.split import iter_chunks
from kinherit.data.tokenizer import separator_id
from kinherit.errors import KinheritError
from kinherit.hf_folder import (
    find_tokenizer,
    load_lm,
    max_sequence_length,
    run_folder_hint,
    task_of,
    vocabulary_signature,
)
from kinherit.metrics.lineage import Ancestors, file_sha256, read_run_record, run_of, source_roots

DEFAULT_PROMPT = "The "
SAMPLE_TOKENS = 32


@dataclass(frozen=True)
class Evaluation:
    loss: float
    perplexity: float
    tokens: int
    """Tokens packed from the text (separators included)."""
    blocks: int
    predicted: int
    """Positions the loss averages over."""
    seq_len: int


def model_tokenizer(model_dir: Path, tokenizer_dir: str | Path | None = None):  # noqa: ANN201
    """The model folder's own tokenizer; another one given as `tokenizer_dir` must equal it (vocabulary, merges,
    added tokens), or every embedding row would stand for another token."""
    own = find_tokenizer(model_dir)
    if own is None:
        hint = run_folder_hint(model_dir)
        raise KinheritError(
            f"{model_dir} has no tokenizer{hint}; kinherit eval packs text with the model's own tokenizer"
        )
    if tokenizer_dir is not None:
        other = find_tokenizer(tokenizer_dir)
        if other is None or vocabulary_signature(other) != vocabulary_signature(own):
            raise KinheritError(
                f"--tokenizer {tokenizer_dir} differs from the tokenizer of {model_dir} (the one it was trained with); "
                "its ids would select the wrong embeddings: drop --tokenizer"
            )
    return own


def trained_seq_len(model_dir: Path) -> int | None:
    """data.seq_len of the run that wrote `model_dir`, when its config.resolved.yaml is there."""
    found = run_of(model_dir)
    resolved = found[0] / "config.resolved.yaml" if found else None
    if resolved is None or not resolved.is_file():
        return None
    return (read_yaml(resolved.read_text()) or {}).get("data", {}).get("seq_len")


MIN_COMPARED_BYTES = 256
"""Files shorter than this are not compared by content (empty `__init__.py`s and other boilerplate match anywhere)."""


def check_unseen(model_dir: Path, data: str) -> None:
    """Refuse text the model (or a model it inherited from) trained on, as far as run.json records it: text inside a
    training corpus's folders, or a file whose bytes equal a file of such a corpus (a copy elsewhere)."""
    runs = []
    if (found := run_of(model_dir)) is not None:
        runs.append(found[0])
        runs += list(Ancestors.of_run(found[0]).runs)
    target = Path(source_roots([data])[0])
    trained_on = []
    for run in runs:
        record = (read_run_record(run) or {}).get("data") or {}
        for root in record.get("roots", []):
            if target == Path(root) or Path(root) in target.parents or target in Path(root).parents:
                raise KinheritError(
                    f"{data} is part of the corpus {root} that {run} trained on (its training side included): the "
                    "perplexity would measure memorisation; evaluate on text outside it"
                )
        trained_on += [(run, source, root) for source, root in zip(record.get("sources", []), record.get("roots", []))]
    _check_contents(data, trained_on)


def _check_contents(data: str, trained_on: list[tuple[Path, str, str]]) -> None:
    """A file of `data` whose bytes equal a file of a corpus in `trained_on` (run, source as given, absolute root) is
    refused. Only files of equal size are hashed, so a large corpus costs a directory walk, not a read."""
    mine = [f.path for f in resolve_sources([data]) if f.path.is_file() and f.nbytes >= MIN_COMPARED_BYTES]
    sizes = {path.stat().st_size for path in mine}
    digests: dict[str, Path] | None = None
    for run, source, root in trained_on:
        try:
            theirs = resolve_sources(["stdlib" if source == "stdlib" else root])
        except KinheritError:  # the corpus is gone or moved: only its path could be compared
            continue
        for item in theirs:
            if not item.path.is_file() or item.path.stat().st_size not in sizes:
                continue
            if digests is None:
                digests = {file_sha256(path): path for path in mine}
            if (copy := digests.get(file_sha256(item.path))) is not None:
                raise KinheritError(
                    f"{copy} has the same content as {item.path}, part of the corpus {root} that {run} trained on (its "
                    "training side included): the perplexity would measure memorisation; evaluate on text outside it"
                )


def pack_text(data: str, tokenizer, out: Path, text_field: str = "text") -> tuple[Path, np.dtype, int]:  # noqa: ANN001
    """Every document of `data` (a file, folder, glob or record file) encoded as pretrain encodes it, into `out`."""
    files = resolve_sources([data])
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    separator = separator_id(tokenizer)
    if separator is None:
        raise KinheritError("the model's tokenizer has no eos or sep token to separate documents")
    dtype = np.dtype(np.uint16 if len(tokenizer) <= 1 << 16 else np.uint32)
    ids: list[int] = []
    piece_open = False
    for chunk in iter_chunks(files, DataConfig(sources=[data], text_field=text_field), "documents"):
        if chunk.text and not chunk.text.isspace():
            ids += backend.encode(chunk.text, add_special_tokens=False).ids
            piece_open = True
        if chunk.end and piece_open:
            ids.append(separator)
            piece_open = False
    path = out / "eval.bin"
    path.write_bytes(np.array(ids, dtype=dtype).tobytes())
    return path, dtype, len(ids)


@torch.no_grad()
def evaluate_model(
    model_dir: str | Path,
    data: str,
    seq_len: int | None = None,
    tokenizer_dir: str | Path | None = None,
    batch_size: int = 16,
    seed: int = 0,
) -> Evaluation:
    """The loss and perplexity of the model in `model_dir` on the text `data` (see the module docstring)."""
    model_dir = Path(model_dir)
    if batch_size < 1 or (seq_len is not None and seq_len < 2):
        raise KinheritError(f"--batch-size must be ≥ 1 and --seq-len ≥ 2 (got {batch_size}, {seq_len})")
    tokenizer = model_tokenizer(model_dir, tokenizer_dir)
    check_unseen(model_dir, data)
    seq_len = seq_len or trained_seq_len(model_dir)
    if seq_len is None:
        raise KinheritError(
            f"{model_dir} was not written by a kinherit run, so its block length is unknown: pass --seq-len"
        )
    model = load_lm(model_dir, "MODEL").eval()
    limit = max_sequence_length(model.config)
    if limit is not None and seq_len > limit:
        raise KinheritError(f"--seq-len {seq_len} exceeds the {limit} positions of {model_dir}; lower it")
    masked = task_of(model.config) == "masked"
    with tempfile.TemporaryDirectory() as tmp:
        path, dtype, tokens = pack_text(data, tokenizer, Path(tmp))
        masking = (
            MaskingSpec(tokenizer.mask_token_id, len(tokenizer), tokenizer.all_special_ids, seed) if masked else None
        )
        blocks = PackedBlocks(path, dtype, seq_len, masking)
        if len(blocks) == 0:
            raise KinheritError(
                f"{data} packs into {tokens} tokens, fewer than one block of {seq_len}; give more text or a lower "
                "--seq-len"
            )
        total, count = 0.0, 0
        for start in range(0, len(blocks), batch_size):
            items = [blocks[i] for i in range(start, min(start + batch_size, len(blocks)))]
            batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}  # (B, T) each
            labels = batch["labels"] if masked else batch["labels"][:, 1:]
            n = int((labels != IGNORE_INDEX).sum())
            if n:
                total += float(model(**batch).loss) * n
                count += n
    loss = total / count
    return Evaluation(loss, math.exp(min(loss, 50.0)), tokens, len(blocks), count, seq_len)


SAMPLING = {"do_sample": True, "temperature": 0.8, "top_k": 40, "repetition_penalty": 1.2}
"""How `sample` decodes: greedy decoding of a small or briefly trained model is one repeated token or blank lines."""
SAMPLE_SEED = 0


def sampling_description() -> str:
    """`SAMPLING` in words, for report.md."""
    return (
        f"sampled at temperature {SAMPLING['temperature']:g} from the top {SAMPLING['top_k']} tokens, repetition "
        f"penalty {SAMPLING['repetition_penalty']:g}, seed {SAMPLE_SEED}"
    )


@torch.no_grad()
def sample(
    model_dir: str | Path, prompt: str = DEFAULT_PROMPT, new_tokens: int = SAMPLE_TOKENS, seed: int = SAMPLE_SEED
) -> str | None:
    """`prompt` continued by the causal LM in `model_dir` as `SAMPLING` decodes, seeded (the same text every time; the
    global RNG is left as it was); None for a masked LM or a folder without tokenizer."""
    tokenizer = find_tokenizer(model_dir)
    if tokenizer is None:
        return None
    model = load_lm(model_dir, "model").eval()
    if task_of(model.config) != "causal":
        return None
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids  # (1, P)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = model.generate(ids, max_new_tokens=new_tokens, pad_token_id=separator_id(tokenizer), **SAMPLING)
    return tokenizer.decode(out[0], skip_special_tokens=True)

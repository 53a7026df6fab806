"""The small model chooses the data: keep the training blocks that small trained models score as worth learning.

The candidates are the training blocks (validation blocks never are), all of them or a seeded sample of C
(`selection.candidates`: score about what the run will consume, not a corpus far larger than its budget).
Scores, one forward pass of each scoring model over every candidate, with NLL(b) the model's mean next-token
loss over the block's T − 1 predicted tokens:

    salt     s_b = NLL_model(b)                        keep the band of quantile ranks [lo, lo + k) by s:
             neither trivially easy (the lowest losses) nor hopeless (the highest); lo = round(skip_easiest·N)
             (SALT, Rawat et al. 2024: "challenging yet learnable" data for the student)
    miniplm  s_b = NLL_reference(b) − NLL_model(b)      keep the k highest: the blocks where the model knows
             most beyond a smaller reference (MiniPLM's difference sampling, Gu et al. ICLR 2025, top-k form)
             = (log p_model(b) − log p_reference(b)) / (T − 1)

with N the candidates and k = max(1, round(keep·N)). Ties are broken by a permutation seeded by
`selection.seed` (which also draws the candidates), so the kept set is a function of the scores and the
settings alone. The scoring costs N·T·(forward FLOPs per token) per model (`selection_flops`), counted in
every run that trains on the selection, whether it scored the blocks itself or read them from the cache:
a run's total is its method's cost.

The kept indices are cached in the corpus cache entry (`selection-<key>.json`, written atomically), keyed by
the corpus fingerprint, seq_len, the scoring models' weights and every setting: a rerun, a resumed run or
another run with the same selection reads them instead of scoring again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from kinherit.config import RunConfig, SelectionConfig
from kinherit.data.dataset import PackedBlocks
from kinherit.data.packing import PackedCorpus, prepare_corpus
from kinherit.data.tokenizer import load_tokenizer
from kinherit.errors import KinheritError
from kinherit.hf_folder import read_config, task_of
from kinherit.inherit.cache import _teacher_digest
from kinherit.inherit.teacher import TeacherSpec, inspect_teacher
from kinherit.io import read_json, write_json
from kinherit.kd.losses import lm_loss

FORMAT = 1


@dataclass(frozen=True)
class Selection:
    """The kept training blocks (ascending indices into the training split), the FLOPs their scoring cost, how many
    blocks were scored (`candidates`) among the split's `num_blocks`, and the cache file."""

    indices: np.ndarray
    flops: float
    candidates: int
    num_blocks: int
    path: Path


def draw_candidates(num_blocks: int, candidates: int | float | None, seed: int) -> np.ndarray:
    """The training blocks to score (ascending): all, or a sample of C drawn by a permutation seeded by `seed`
    (C an int, or a fraction f ∈ (0, 1] of the blocks: max(1, round(f·N)))."""
    if candidates is None:
        return np.arange(num_blocks)
    count = candidates if isinstance(candidates, int) else max(1, round(candidates * num_blocks))
    if count > num_blocks:
        raise KinheritError(
            f"selection.candidates {candidates} exceeds the {num_blocks} training blocks; lower it, give a "
            "fraction in (0, 1], or remove it to score every block"
        )
    generator = torch.Generator().manual_seed(seed)
    return np.sort(torch.randperm(num_blocks, generator=generator)[:count].numpy())


def block_nll(
    model: torch.nn.Module, blocks: Dataset, batch_size: int, device: torch.device | str = "cpu"
) -> np.ndarray:
    """Mean next-token NLL of every block under `model` (causal LM), float64 (N,)."""
    scores = np.empty(len(blocks), dtype=np.float64)
    for start in range(0, len(blocks), batch_size):
        stop = min(start + batch_size, len(blocks))
        ids = torch.stack([blocks[i]["input_ids"] for i in range(start, stop)]).to(device)  # (B, T)
        with torch.no_grad():
            nll = lm_loss(model(input_ids=ids).logits, ids, masked=False, reduction="none")  # (B, T), 0 at position 0
        scores[start:stop] = (nll.sum(dim=1) / (ids.shape[1] - 1)).double().cpu().numpy()
    return scores


def choose(scores: np.ndarray, method: str, keep: float, skip_easiest: float, seed: int) -> np.ndarray:
    """The kept indices (ascending) by the rule of `method` (module docstring) on `scores` (N,)."""
    n = len(scores)
    k = max(1, round(keep * n))
    tiebreak = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    if method == "salt":
        order = np.lexsort((tiebreak, scores))  # ascending score, ties by the seeded permutation
        start = min(round(skip_easiest * n), n - k)
        kept = order[start : start + k]
    else:
        kept = np.lexsort((tiebreak, -scores))[:k]  # the k highest
    return np.sort(kept)


def scoring_models(config: RunConfig) -> tuple[str, str | None]:
    """(model, reference) paths: `selection.model`, else the teacher's (RunConfig checks that one is set)."""
    cfg = config.selection
    assert cfg is not None
    model = cfg.model or (config.teacher.path if config.teacher is not None else None)
    assert model is not None
    return model, cfg.reference


def _inspect(path: str, key: str, tokenizer: Any, seq_len: int) -> TeacherSpec:
    """The scoring model at `path`, checked: a causal LM folder with the student's vocabulary."""
    task = task_of(read_config(path, key))
    if task != "causal":
        raise KinheritError(f"{key} {path} is a {task} LM; selection scores blocks by next-token loss: use a causal LM")
    return inspect_teacher(path, tokenizer, seq_len, "causal")


def _cache_key(cfg: SelectionConfig, corpus: PackedCorpus, seq_len: int, specs: list[TeacherSpec]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "corpus_fingerprint": corpus.fingerprint,
        "seq_len": seq_len,
        "method": cfg.method,
        "keep": cfg.keep,
        "skip_easiest": cfg.band_start,
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "candidates": cfg.candidates,
        "models": [_teacher_digest(spec.path) for spec in specs],
    }


def selection_path(corpus: PackedCorpus, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return corpus.root / f"selection-{digest}.json"


def select_blocks(
    config: RunConfig, corpus: PackedCorpus, tokenizer: Any, device: torch.device | str = "cpu"
) -> Selection:
    """The selection of `config.selection` among the training blocks of `corpus` (never its validation split):
    read from the cache, or scored (one forward pass per scoring model on `device`) and cached."""
    cfg = config.selection
    assert cfg is not None
    seq_len = config.data.seq_len
    train = PackedBlocks(corpus.train_path, corpus.dtype, seq_len)  # unmasked
    candidates = draw_candidates(len(train), cfg.candidates, cfg.seed)
    model, reference = scoring_models(config)
    specs = [_inspect(model, "selection.model", tokenizer, seq_len)]
    if reference is not None:
        specs.append(_inspect(reference, "selection.reference", tokenizer, seq_len))
    flops = float(sum(len(candidates) * seq_len * spec.flops.forward for spec in specs))
    key = _cache_key(cfg, corpus, seq_len, specs)
    path = selection_path(corpus, key)
    if path.is_file():
        cached = read_json(path)
        if cached.get("key") == key and cached.get("num_blocks") == len(train):
            return Selection(np.asarray(cached["indices"], dtype=np.int64), flops, len(candidates), len(train), path)
    nll = []
    pool = Subset(train, candidates.tolist())
    for spec in specs:
        scorer = spec.load().to(device)
        nll.append(block_nll(scorer, pool, cfg.batch_size, device))
        del scorer
    scores = nll[0] if cfg.method == "salt" else nll[1] - nll[0]
    indices = candidates[choose(scores, cfg.method, cfg.keep, cfg.band_start, cfg.seed)]
    write_json(path, {"key": key, "num_blocks": len(train), "indices": indices.tolist()})
    return Selection(indices, flops, len(candidates), len(train), path)


def select_training_data(config: RunConfig, device: torch.device | str = "cpu") -> Selection:
    """`config.selection` for the corpus of `config.data` (tokenized and packed first if needed): the Python
    entry point of what `kinherit pretrain` does with a `selection:` section."""
    if config.selection is None:
        raise KinheritError("the config has no selection: section; add one (method, keep, ...)")
    corpus = prepare_corpus(config.data)
    if corpus.train_tokens < config.data.seq_len:
        raise KinheritError(
            f"the training split has {corpus.train_tokens} tokens, fewer than one block of "
            f"data.seq_len={config.data.seq_len}; add text or lower data.seq_len"
        )
    return select_blocks(config, corpus, load_tokenizer(corpus.tokenizer_dir), device)


class SelectedBlocks(Dataset):
    """The kept blocks of `blocks` as a dataset of len(indices) items. An epoch-offset index e·k + i (from
    `EpochShuffleSampler`) maps to e·N + indices[i], so the wrapped dataset sees the same epoch (masking seed)."""

    def __init__(self, blocks: Dataset, indices: np.ndarray):
        self.blocks, self.indices = blocks, indices
        self.num_blocks = len(blocks)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        epoch, i = divmod(int(index), len(self.indices))
        return self.blocks[epoch * self.num_blocks + int(self.indices[i])]

"""Steps/s of whole `kinherit pretrain` runs, evaluations and checkpoints included: earlier versions' evaluation (every
validation block, `data.max_val_tokens: null`) against today's default (`data.max_val_tokens`), side by side.

    python -m bench.run_speed [--corpus PATH ...] [--size 64x4] [--vocab 4096] [--steps 120] [--repeats 3] [--out DIR]

A run here is a user's config: the library's defaults (batch 32 × 128 tokens, an evaluation every 40 steps and at
step 0) at the llama `HxL` of the staged and KI benches (`protocol.model_at`). The corpus is packed once before any
timing. The two variants alternate, `--repeats` times each; a run's steps/s is its optimizer steps over the wall time
of its `pretrain` call (model build, evaluations, checkpoints and the final save included). Prints the median steps/s
of each variant with its spread (min–max) and the ratio of the medians, and writes run_speed.md in `--out`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from bench.protocol import model_at, parse_size
from kinherit.config import DEFAULT_MAX_VAL_TOKENS, validate_config
from kinherit.data.packing import prepare_corpus
from kinherit.io import atomic_file
from kinherit.train.pretrain import pretrain

VARIANTS = {"every validation block (earlier versions)": None, "data.max_val_tokens default": DEFAULT_MAX_VAL_TOKENS}
"""Each variant's `data.max_val_tokens`."""


def config(out: Path, corpus: list[str], size: tuple[int, int], vocab: int, steps: int, max_val: int | None) -> dict:
    return {
        "out": str(out),
        "data": {
            "sources": corpus,
            "tokenizer": {"train_vocab_size": vocab},
            "max_val_tokens": max_val,
        },
        "model": model_at(*size),
        "train": {"max_steps": steps, "save_steps": steps, "disable_tqdm": True},
    }


def steps_per_s(run: dict[str, Any]) -> float:
    """One whole run's optimizer steps per second of wall time (the folder is removed first and after)."""
    out = Path(run["out"])
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = pretrain(validate_config(run))
    elapsed = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    return result.final_step / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", nargs="+", default=["stdlib"], help="text files or folders, or stdlib (default)")
    parser.add_argument("--size", default="64x4")
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/run_speed"))
    ns = parser.parse_args(argv)
    size = parse_size(ns.size)
    runs = {
        name: config(ns.out / "run", ns.corpus, size, ns.vocab, ns.steps, max_val) for name, max_val in VARIANTS.items()
    }
    corpus = prepare_corpus(validate_config(next(iter(runs.values()))).data)
    speeds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(ns.repeats):
        for name, run in runs.items():
            speeds[name].append(steps_per_s(run))
    (old, new) = (statistics.median(speeds[name]) for name in runs)
    lines = [
        f"llama {ns.size}, vocab {ns.vocab}, {ns.steps} steps of 32 × 128 tokens, an evaluation every 40 steps and at "
        f"step 0; {corpus.val_tokens:,} validation tokens; {torch.get_num_threads()} threads; {ns.repeats} runs each, "
        "alternating",
        "",
        "| evaluation | steps/s, median (min–max) |",
        "|---|---|",
        *(f"| {name} | {statistics.median(v):.2f} ({min(v):.2f}–{max(v):.2f}) |" for name, v in speeds.items()),
        "",
        f"ratio of the medians: {new / old:.2f}×",
    ]
    ns.out.mkdir(parents=True, exist_ok=True)
    with atomic_file(ns.out / "run_speed.md") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

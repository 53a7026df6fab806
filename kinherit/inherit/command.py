"""`kinherit cache-teacher`: run a teacher once over a run's training blocks and store its top-K outputs."""

from __future__ import annotations

import argparse

from kinherit.config import load_config
from kinherit.errors import KinheritError
from kinherit.kd.cross_tokenizer import METHODS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cache-teacher",
        help="precompute a teacher's top-K outputs for knowledge inheritance (teacher.cache)",
        description="Run the teacher once over the packed training tokens of --config (data section) and store "
        "its top-K log-probabilities; students then train with `teacher: {cache: DIR}` and no teacher loaded. "
        "Run it under torchrun or accelerate launch to split the blocks over processes (the cache is the same). "
        "Config keys can be overridden: --data.seq_len=256",
    )
    parser.add_argument("--teacher", required=True, help="teacher model folder (HF, with its tokenizer)")
    parser.add_argument(
        "--config", required=True, help="the student's YAML run config; its data section decides the tokens"
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=10,
        help="teacher probabilities kept per token (default 10); "
        "with --top-p, the most kept per token (the byte budget)",
    )
    parser.add_argument(
        "--top-p",
        type=float,
        help="keep per token the fewest most likely tokens whose probability "
        "reaches P (nucleus, at most --top-k): rows of variable length, e.g. --top-p 0.95 --top-k 64",
    )
    parser.add_argument("--out", help="cache folder (default: next to the teacher, named by data fingerprint and K)")
    parser.add_argument("--batch-size", type=int, default=32, help="blocks per teacher forward pass")
    parser.add_argument(
        "--cross-tokenizer",
        choices=list(METHODS),
        help="the teacher has another tokenizer: store the aligned targets of this teacher.cross_tokenizer "
        "method (span log-likelihoods, and top-K at common boundaries, restricted to the shared vocabulary "
        "or, for shared_prefix, bucketed)",
    )
    parser.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from kinherit.inherit.cache import build_cache
    from kinherit.inherit.cross_tokenizer.cache import build_cross_cache

    config = load_config(args.config, args.overrides)
    if args.cross_tokenizer and args.top_p is not None:
        raise KinheritError("--top-p serves same-tokenizer caches; drop it with --cross-tokenizer (its top-K is fixed)")
    if args.cross_tokenizer:
        cache = build_cross_cache(
            args.teacher, config, args.cross_tokenizer, args.top_k, args.out, args.batch_size
        ).base
        print(
            f"done: aligned span log-likelihoods and top-{cache.top_k} shared-vocabulary teacher outputs for "
            f"{cache.rows:,} tokens in {cache.root}"
        )
        return 0
    cache = build_cache(args.teacher, config, args.top_k, args.out, args.batch_size, args.top_p)
    kept = (
        f"top-{cache.top_k}"
        if cache.top_p is None
        else f"top-p {cache.top_p:g} (≤ {cache.top_k}, mean {cache.meta['kept'] / cache.rows:.2f} tokens)"
    )
    if PartialState().is_main_process:
        print(
            f"done: {kept} teacher outputs for {cache.rows:,} tokens in {cache.root}, {cache.bytes_per_token:.1f} "
            "bytes/token"
        )
    return 0

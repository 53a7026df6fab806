"""`kinherit report RUN_DIR [RUN_DIR ...] [--baseline RUN_DIR] --out DIR` and `kinherit eval MODEL --data FILE`."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="compare runs: compute to reach the baseline's loss, savings, plots",
        description="Write report.md, results.json and PNG plots comparing runs against a baseline.",
    )
    parser.add_argument("runs", nargs="+", help="run folders (each with metrics.jsonl)")
    parser.add_argument("--baseline", help="the run to beat (default: the first run)")
    parser.add_argument("--out", required=True, help="folder for report.md, results.json and plots")
    parser.add_argument(
        "--prompt",
        help="report.md shows each causal LM's continuation of it (default 'The '; sampled at temperature 0.8, "
        "top-k 40, repetition penalty 1.2, seed 0: the same text at every run of the report)",
    )
    parser.set_defaults(func=run)
    add_eval_parser(subparsers)


def run(args: argparse.Namespace) -> int:
    from kinherit.metrics.report import build_report

    print(build_report(args.runs, args.out, args.baseline, args.prompt).markdown)
    print(f"report: {args.out}/report.md")
    return 0


def add_eval_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="perplexity of a model folder on a text file it never trained on, packed as pretrain packs",
        description="Loss and perplexity of MODEL on the text in --data (files, folders, globs, JSONL/Parquet), "
        "tokenized with MODEL's own tokenizer and packed into blocks as pretrain does.",
    )
    parser.add_argument("model", metavar="MODEL", help="an HF model folder with its tokenizer (e.g. runs/small/model)")
    parser.add_argument("--data", required=True, help="text the model never trained on")
    parser.add_argument("--seq-len", type=int, help="block length (default: the data.seq_len MODEL was trained with)")
    parser.add_argument("--tokenizer", help="a tokenizer folder to check against MODEL's own (refused when it differs)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from kinherit.metrics.evaluate import evaluate_model

    result = evaluate_model(args.model, args.data, args.seq_len, args.tokenizer, args.batch_size)
    print(
        f"{args.model} on {args.data}: loss {result.loss:.4f}, perplexity {result.perplexity:.2f} "
        f"({result.predicted:,} predicted tokens in {result.blocks} blocks of {result.seq_len})"
    )
    return 0

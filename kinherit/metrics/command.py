"""`kinherit report RUN_DIR [RUN_DIR ...] [--baseline RUN_DIR] --out DIR`."""

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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kinherit.metrics.report import build_report

    print(build_report(args.runs, args.out, args.baseline).markdown)
    print(f"report: {args.out}/report.md")
    return 0

"""`kinherit demo [--out DIR] [--quick]`: the whole inheritance experiment on the built-in stdlib corpus."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="end-to-end: teacher → grow → scratch / KI / grown / grown+KI students → savings report",
        description="Train a small teacher on the Python standard library's source, grow it, train four students "
        "on the same budget and report the compute each needs to reach the from-scratch loss. No data or GPU needed.",
    )
    parser.add_argument(
        "--out", default="runs/demo", help="output folder (default runs/demo); re-running reuses finished runs"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes and budgets (≈1–2 min; a smoke test)")
    parser.add_argument("--cache-dir", help="corpus cache folder (default $KINHERIT_CACHE or ~/.cache/kinherit)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kinherit.demo.experiment import QUICK, ExperimentSpec, run_experiment

    report = run_experiment(QUICK if args.quick else ExperimentSpec(), args.out, args.cache_dir)
    print()
    print(report.markdown)
    print(f"report and plots: {args.out}/report/report.md")
    return 0

"""`kinherit` entry point: one subcommand per capability, each defined in its own `command.py`.

Every command module exposes `add_parser(subparsers)`, which registers its subparser and sets
`func(args) -> int`. User errors (`KinheritError`, pydantic validation) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from kinherit.errors import KinheritError

COMMAND_MODULES = (
    "kinherit.train.command",
    "kinherit.grow.command",
    "kinherit.metrics.command",
    "kinherit.demo.command",
    "kinherit.recycle.command",
    "kinherit.inherit.command",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kinherit",
        description="Train bigger language models by inheriting from smaller ones.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    try:
        return int(args.func(args) or 0)
    except KinheritError as err:
        print(f"kinherit {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""`kinherit plan --config RUN.yaml [--have DIR ...] [--write-config OUT.yaml [--overwrite]] [--json]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "predict what reusing smaller models saves on a run (staged growth, grow, KI, dense → MoE), without training"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help=HELP,
        description="One row per recipe with its FLOPs, the predicted loss difference against scratch at the "
        "configured size on the same tokens and the predicted FLOPs saving (90%% intervals of the reuse law fitted "
        "to kinherit's measurements; docs/plan.md); the recommendation first.",
    )
    parser.add_argument("--config", required=True, help="the pretrain config of the run you want (see configs/)")
    parser.add_argument("--have", nargs="+", default=[], metavar="DIR", help="trained HF model folders to reuse")
    parser.add_argument("--write-config", metavar="OUT.yaml", help="write the recommended recipe as a pretrain config")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --write-config file")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON (the recommendation first)")
    parser.add_argument("--law", help="a reuse_law.json to predict with (default: the one shipped in the package)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kinherit.errors import KinheritError
    from kinherit.plan import plan
    from kinherit.plan.output import table, write_config

    out = Path(args.write_config) if args.write_config else None
    if out is not None and out.exists() and not args.overwrite:
        raise KinheritError(f"--write-config {out} exists; pass --overwrite to replace it")
    result = plan(args.config, args.have, args.law)
    if args.json:
        print(json.dumps([row.as_json() for row in result.rows], indent=2))
    else:
        print(table(result))
    if out is not None:
        write_config(result, out)
        if not args.json:
            print(f"wrote {out}: {result.rows[0].recipe.name}")
    return 0

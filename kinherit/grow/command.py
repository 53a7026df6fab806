"""`kinherit grow SRC_DIR OUT_DIR [...]`: grow an HF model folder, verify it, print the report."""

from __future__ import annotations

import argparse

from kinherit.grow.depth import DEPTH_OPERATORS
from kinherit.grow.width import WIDTH_OPERATORS


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "grow",
        help="grow a trained model into a bigger shape (width and/or depth) and verify it",
        description="Grow SRC_DIR (an HF model folder) into OUT_DIR: config.json, model.safetensors, "
        "tokenizer files and growth.json (the replayable plan and the verification report). "
        "Exits 1 when an exact operator deviates by more than 1e-4.",
    )
    parser.add_argument("src", metavar="SRC_DIR", help="source model folder")
    parser.add_argument("out", metavar="OUT_DIR", help="output folder (written atomically)")
    parser.add_argument("--hidden-size", type=int, help="target hidden size (default: the source's)")
    parser.add_argument("--intermediate-size", type=int, help="target FFN size (default: keeps the ratio to hidden)")
    parser.add_argument("--num-heads", type=int, help="target attention heads (default: hidden / head_dim)")
    parser.add_argument("--num-kv-heads", type=int, help="target key/value heads (default: keeps the GQA group size)")
    parser.add_argument("--num-layers", type=int, help="target number of layers (default: the source's)")
    parser.add_argument("--width", choices=sorted(WIDTH_OPERATORS), default="clone", help="width operator")
    parser.add_argument("--depth", choices=sorted(DEPTH_OPERATORS), default="identity", help="depth operator")
    parser.add_argument("--noise-db", type=float, help="symmetry-breaking noise at this SNR in dB (cancels exactly)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random unit maps and the noise")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from kinherit.grow.api import grow_folder

    report = grow_folder(
        args.src,
        args.out,
        hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size,
        num_heads=args.num_heads,
        num_kv_heads=args.num_kv_heads,
        num_layers=args.num_layers,
        width=args.width,
        depth=args.depth,
        noise_db=args.noise_db,
        seed=args.seed,
    )
    print(report.table())
    print(f"wrote {args.out}")
    return 0 if report.passed else 1

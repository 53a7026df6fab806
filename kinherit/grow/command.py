"""`kinherit grow SRC_DIR OUT_DIR [...]` and `kinherit divergence MODEL_DIR`."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from kinherit.errors import KinheritError
from kinherit.grow.depth import DEPTH_OPERATORS
from kinherit.grow.options import DEFAULT_NOISE_DB, DEFAULT_ROUTER, ROUTER_INITS, GrowthOptions
from kinherit.grow.upcycle import MOE_TARGETS
from kinherit.grow.width import WIDTH_OPERATORS


def noise_db(text: str) -> float | None:
    """`--noise-db` value: an SNR in dB, or `off`."""
    if text.strip().lower() in ("off", "none", "null"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of dB or 'off', got {text!r}") from None


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "grow",
        help="grow a trained model into a bigger shape (width and/or depth) and verify it",
        description="Grow SRC_DIR (an HF model folder) into OUT_DIR: config.json, model.safetensors, "
        "tokenizer files and growth.json (the replayable plan and the verification report). "
        "Exits 1, writing nothing, when an exact operator deviates by more than 1e-4 (max |Δ| / max(1, max |logits|)). "
        "An OUT_DIR with files in it needs --overwrite.",
    )
    parser.add_argument("src", metavar="SRC_DIR", help="source model folder")
    parser.add_argument("out", metavar="OUT_DIR", help="output folder (written atomically; must be empty or new)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace kinherit's outputs in a non-empty OUT_DIR (config, weights, tokenizer files, "
        "growth.json); every other file in it is kept",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the target shapes, parameter counts and the operator per space; write nothing",
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="grow tensor by tensor from disk to disk: memory holds one tensor, not both models; the "
        "weights are stored in the source's dtype (bf16 included) and verified module by module, "
        "a bf16 (fp16) output held to 2^-5 (2^-8) instead of 1e-4: its rounding breaks the noise's "
        "exact cancellation",
    )
    parser.add_argument(
        "--max-shard-size",
        type=float,
        default=2.0,
        metavar="GB",
        help="with --stream, the largest output shard in GB (10^9 bytes; default 2)",
    )
    parser.add_argument("--hidden-size", type=int, help="target hidden size (default: the source's)")
    parser.add_argument("--intermediate-size", type=int, help="target FFN size (default: keeps the ratio to hidden)")
    parser.add_argument("--num-heads", type=int, help="target attention heads (default: hidden / head_dim)")
    parser.add_argument("--num-kv-heads", type=int, help="target key/value heads (default: keeps the GQA group size)")
    parser.add_argument("--num-layers", type=int, help="target number of layers (default: the source's)")
    defaults = {name: field.default for name, field in GrowthOptions.model_fields.items()}
    parser.add_argument(
        "--width",
        choices=sorted(WIDTH_OPERATORS),
        default=defaults["width"],
        help=f"width operator (default {defaults['width']})",
    )
    parser.add_argument(
        "--depth",
        choices=sorted(DEPTH_OPERATORS),
        default=defaults["depth"],
        help=f"depth operator (default {defaults['depth']})",
    )
    parser.add_argument(
        "--noise-db",
        type=noise_db,
        default=DEFAULT_NOISE_DB,
        metavar="SNR|off",
        help=f"symmetry-breaking noise at this SNR in dB against the weights (0 dB: noise std equal to the "
        f"weights' std); it cancels exactly (default {DEFAULT_NOISE_DB:g}). "
        "'off' leaves duplicated units identical forever",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random unit maps and the noise")
    moe = parser.add_argument_group(
        "dense → mixture of experts (sparse upcycling, Komatsuzaki et al. 2022, https://arxiv.org/abs/2212.05055)",
        "after width/depth growth, every expert starts as a copy of the grown MLP: "
        + ", ".join(f"{src} → {t.model_type}" for src, t in MOE_TARGETS.items()),
    )
    moe.add_argument("--num-experts", type=int, metavar="E", help="upcycle into E experts per layer")
    moe.add_argument("--experts-per-token", type=int, metavar="K", help="experts each token is routed to (default 2)")
    moe.add_argument(
        "--router",
        choices=ROUTER_INITS,
        default=DEFAULT_ROUTER,
        help=f"router init (default {DEFAULT_ROUTER}; any init is exact: the selected weights are renormalised)",
    )
    moe.add_argument(
        "--router-std",
        type=float,
        metavar="STD",
        help="std of a random router's entries, orthogonal: same row norm (default: the config's initializer_range)",
    )
    moe.add_argument(
        "--expert-noise-db",
        type=noise_db,
        default=None,
        metavar="SNR|off",
        help="independent noise on every expert copy at this SNR in dB (default off); NOT exact: no "
        "noise on the copies cancels for every top-k subset, the deviation is reported",
    )
    moe.add_argument(
        "--drop-upcycling",
        type=float,
        default=0.0,
        metavar="R",
        help="Drop-Upcycling (Nakamura et al. 2025, https://arxiv.org/abs/2502.19261): re-initialise a "
        "random share R of every expert's FFN units with the dense weights' mean/std (default 0); NOT exact",
    )
    parser.set_defaults(func=run)

    check = subparsers.add_parser(
        "divergence",
        help="how far the copies of every duplicated unit of a grown (and trained) model have drifted apart",
        description="Read MODEL_DIR's weights and the unit maps of its growth.json, and report per space how many "
        "duplicated units are still exact copies (added width not in use) and the median relative divergence.",
    )
    check.add_argument("model", metavar="MODEL_DIR", help="a grown folder, or a trained one (e.g. runs/x/model)")
    check.add_argument("--growth", help="growth.json (default: MODEL_DIR's, or that of the run's model.from)")
    check.set_defaults(func=run_divergence)


def run(args: argparse.Namespace) -> int:
    from kinherit.grow.api import GrowthNotExact, grow_folder, plan_folder
    from kinherit.grow.plan import NO_NOISE_WARNING
    from kinherit.grow.stream import grow_streaming

    options = GrowthOptions.of({key: getattr(args, key) for key in GrowthOptions.model_fields})
    if args.dry_run:
        plan, report = plan_folder(args.src, args.out, options, overwrite=args.overwrite)
        print(report.table())
        print("\n".join("  " + line for line in plan.describe_spaces()))
        print(f"dry run: nothing written to {args.out}")
        return 0
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if args.stream:
                report = grow_streaming(
                    args.src,
                    args.out,
                    options,
                    overwrite=args.overwrite,
                    max_shard_bytes=int(args.max_shard_size * 1e9),
                )
            else:
                report = grow_folder(args.src, args.out, options, overwrite=args.overwrite)
    except GrowthNotExact as err:
        print(f"kinherit grow: error: {err}", file=sys.stderr)
        return 1
    if any(str(w.message) == NO_NOISE_WARNING for w in caught):  # only when units are duplicated
        print(f"kinherit grow: warning: {NO_NOISE_WARNING}", file=sys.stderr)
    print(report.table())
    print(f"wrote {args.out}")
    return 0


def run_divergence(args: argparse.Namespace) -> int:
    from kinherit.grow.divergence import copy_divergence, find_growth
    from kinherit.hf_folder import read_model_state

    model_dir = Path(args.model)
    if not model_dir.is_dir():
        raise KinheritError(f"MODEL_DIR {model_dir} not found")
    growth = Path(args.growth) if args.growth else find_growth(model_dir)
    report = copy_divergence(growth, read_model_state(model_dir, "MODEL_DIR"))
    print(f"copies of duplicated units in {model_dir} (growth: {growth})")
    print(report.table())
    return 0

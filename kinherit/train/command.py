"""`kinherit pretrain`: pre-training, self-learning or knowledge inheritance (a `teacher:` section), from a YAML config
plus `--section.key=value` overrides."""

from __future__ import annotations

import argparse
import json
import math


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="pre-train a model on a corpus: self-learning, or knowledge inheritance with a teacher: section",
        description="Pre-train a model on a corpus, alone (self-learning) or taught by a smaller model (knowledge "
        "inheritance, a teacher: section). Any config key can be overridden: --train.max_steps=100 "
        "--model.hidden_size=256; --unset=model.hidden_size,model.num_layers removes keys of the config file "
        "(they take their defaults); --model.from=DIR trains the model in DIR in place of the config's "
        "model.family and sizes.",
    )
    parser.add_argument("--config", help="YAML run config (see configs/)")
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (the config's out:, default runs/run): "
        "config.resolved.yaml, metrics.jsonl, checkpoints/, model/",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in <out>/checkpoints"
    )
    parser.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from kinherit.config import load_config
    from kinherit.train.pretrain import pretrain

    config = load_config(
        args.config, [*args.overrides, *([f"--out={json.dumps(args.out)}"] if args.out is not None else [])]
    )
    args.run_out = config.out  # where an interrupted run's checkpoints are (`kinherit.cli`)
    result = pretrain(config, resume=args.resume)
    print(
        f"done: step {result.final_step}, val loss {result.final_val_loss:.4f} "
        f"(ppl {math.exp(min(result.final_val_loss, 50)):.2f}); model in {result.model_dir}"
    )
    return 0

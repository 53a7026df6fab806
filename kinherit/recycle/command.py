"""`kinherit finetune`, `kinherit recycle` and `kinherit recycle-experiment` (see docs/recycle.md)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    finetune = subparsers.add_parser(
        "finetune",
        help="fine-tune a sequence classifier (full or LoRA), optionally distilling from an old fine-tuned model",
        description="Fine-tune a classifier. Any config key can be overridden: --train.max_steps=100 "
        "--teacher.alpha=0.9",
    )
    finetune.add_argument("--config", help="YAML finetune config")
    finetune.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in <out>/checkpoints"
    )
    finetune.set_defaults(func=run_finetune, accepts_overrides=True)

    recycle = subparsers.add_parser(
        "recycle",
        help="start a new base's fine-tuning from an old fine-tuning: B + λ·(A_tuned − A), or A's adapter on B",
        description="Write the initialization-based starting point for fine-tuning NEW_BASE: an HF classifier "
        "folder (B + λ·(A_tuned − A), head from A_tuned) or, with --adapter, A's LoRA adapter re-based on B. "
        "When B was grown from A, the delta is mapped through the growth plan (growth.json).",
    )
    recycle.add_argument("--old-base", required=True, metavar="A", help="the base model A_TUNED was fine-tuned from")
    recycle.add_argument(
        "--old-tuned",
        required=True,
        metavar="A_TUNED",
        help="A fine-tuned (classifier folder, or adapter folder with --adapter)",
    )
    recycle.add_argument(
        "--new-base", required=True, metavar="B", help="the upgraded base: A continually pre-trained, or grown"
    )
    recycle.add_argument("--out", required=True, metavar="DIR", help="output folder (written atomically)")
    recycle.add_argument(
        "--scale", type=float, default=1.0, metavar="λ", help="scale of the recycled delta (default 1)"
    )
    recycle.add_argument("--adapter", action="store_true", help="A_TUNED is a PEFT LoRA adapter on A")
    recycle.add_argument("--growth", metavar="PATH", help="growth.json (or the grown folder) when B lacks its own")
    recycle.set_defaults(func=run_recycle)

    experiment = subparsers.add_parser(
        "recycle-experiment",
        help="compare fine-tuning B from scratch, init-based, distillation-based and combined recycling",
        description="Runs the four variants on the same data and budget; writes report.json, report.md and "
        "accuracy.png.",
    )
    experiment.add_argument("--config", help="YAML experiment config")
    experiment.set_defaults(func=run_experiment, accepts_overrides=True)


def run_finetune(args: argparse.Namespace) -> int:
    from kinherit.config import load_yaml_config
    from kinherit.recycle.config import FinetuneConfig
    from kinherit.recycle.finetune import finetune

    config = load_yaml_config(FinetuneConfig, args.config, args.overrides)
    args.run_out = config.out  # where an interrupted run's checkpoints are (`kinherit.cli`)
    result = finetune(config, resume=args.resume)
    steps = ", ".join(f"{step}: {acc:.3f}" for step, acc in result.accuracy.items())
    print(f"done: step {result.final_step}, val accuracy by step {{{steps}}}; saved {result.model_dir}")
    return 0


def run_recycle(args: argparse.Namespace) -> int:
    from kinherit.recycle.adapters import recycle_adapter
    from kinherit.recycle.delta import recycle_full

    recycle = recycle_adapter if args.adapter else recycle_full
    report = recycle(args.old_base, args.old_tuned, args.new_base, args.out, scale=args.scale, growth=args.growth)
    print("\n".join(report.lines()))
    print(f"wrote {args.out}")
    return 0


def run_experiment(args: argparse.Namespace) -> int:
    from kinherit.config import load_yaml_config
    from kinherit.recycle.comparison import run
    from kinherit.recycle.config import ExperimentConfig

    report = run(load_yaml_config(ExperimentConfig, args.config, args.overrides))
    print(report.markdown())
    return 0

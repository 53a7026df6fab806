"""Step time of one student under self-learning, online KI and cached KI, against the FLOPs prediction.

    python -m bench.ki_overhead [--steps 30] [--out runs/ki_overhead]

Everything goes through `kinherit pretrain` (real Trainer, data loading, logging). The teacher is a
half-width model; online KI runs it on every step (teacher.steps = max_steps), cached KI reads its top-10
from a `cache-teacher` folder. Step time is the median of the per-step wall times in metrics.jsonl, skipping
the first steps. Predicted ratio = (student train FLOPs + teacher forward FLOPs) / student train FLOPs.
"""

from __future__ import annotations

import argparse
import shutil
import sysconfig
from pathlib import Path
from typing import Any

from bench.protocol import step_time
from kinherit.config import validate_config
from kinherit.inherit.cache import build_cache
from kinherit.metrics.log import read_metrics
from kinherit.train.pretrain import pretrain

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def _config(out: Path, hidden: int, layers: int, steps: int, teacher: dict[str, Any] | None = None) -> dict[str, Any]:
    config = {
        "out": str(out),
        "data": {
            "sources": [str(STDLIB / p) for p in ("json", "email", "logging")],
            "seq_len": 128,
            "tokenizer": {"train_vocab_size": 4096},
            "cache_dir": str(out.parent / "corpus"),
        },
        "model": {"family": "llama", "hidden_size": hidden, "num_layers": layers, "num_heads": 4},
        "train": {
            "max_steps": steps,
            "per_device_train_batch_size": 8,
            "eval_steps": steps,
            "save_steps": steps,
            "logging_steps": 1,
            "disable_tqdm": True,
            "seed": 0,
        },
    }
    if teacher is not None:
        config["teacher"] = teacher
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", default="runs/ki_overhead")
    args = parser.parse_args()
    root = Path(args.out)
    for name in ("teacher", "self", "online", "cached", "cache"):
        shutil.rmtree(root / name, ignore_errors=True)

    teacher = pretrain(validate_config(_config(root / "teacher", 128, 2, 2)))
    cache = build_cache(
        teacher.model_dir, validate_config(_config(root / "unused", 256, 4, args.steps)), 10, root / "cache"
    )
    runs = {
        "self-learning": None,
        "online KI": {"path": str(teacher.model_dir), "steps": args.steps},
        "online KI top-10": {"path": str(teacher.model_dir), "steps": args.steps, "top_k": 10},
        "cached KI top-10": {"cache": str(cache.root), "steps": args.steps},
    }
    times, flops = {}, {}
    for i, (name, section) in enumerate(runs.items()):
        out = root / f"run{i}"
        shutil.rmtree(out, ignore_errors=True)
        pretrain(validate_config(_config(out, 256, 4, args.steps, section)))
        times[name] = step_time(out, skip=3)
        last = [e for e in read_metrics(out / "metrics.jsonl") if "loss" in e][-1]
        flops[name] = last["flops"] / (last["flops"] - last.get("teacher_flops", 0))
    base = times["self-learning"]
    print(f"\n{'run':>18} | {'step s':>7} | {'time ratio':>10} | {'FLOPs ratio':>11}")
    for name in runs:
        print(f"{name:>18} | {times[name]:7.3f} | {times[name] / base:10.3f} | {flops[name]:11.3f}")
    print("(cached KI runs no teacher; its FLOPs ratio counts the cache's one-off teacher pass over the same tokens)")


if __name__ == "__main__":
    main()

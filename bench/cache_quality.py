"""What a truncated teacher cache costs in KD quality: a student's validation loss after N steps of KI from the
full online teacher vs from top-K and top-p caches, with each cache's bytes per token.

    python -m bench.cache_quality [--steps 300] [--temperatures 2 1] [--out runs/cache_quality]

Everything goes through `kinherit pretrain` and `build_cache` on the stdlib corpus of the tests (json, email,
logging; 512-token vocabulary, seq_len 32). The teacher (llama, hidden 64, 2 layers; LR 3e-3) trains
`--teacher-steps` steps; the student (hidden 128, 2 layers; LR 1e-3, 10% warmup) trains `--steps` steps with
teacher.steps = `--steps` (α from 1 to 0, linear), the same seed and data order in every run, once per KD temperature
τ (teacher.temperature; 2 is the default). Prints the student's budget in tokens per parameter, then one markdown
table row per setting: the student's validation loss per τ, and its difference from the online full-distribution
teacher at the same τ.
"""

from __future__ import annotations

import argparse
import shutil
import sysconfig
from pathlib import Path
from typing import Any

from bench.protocol import budget_line, final_loss, model_param_counts, tokens_per_step
from kinherit.config import validate_config
from kinherit.inherit.cache import build_cache
from kinherit.train.pretrain import pretrain

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SETTINGS: list[tuple[str, int, float | None]] = [  # (name, K, p)
    ("top-1", 1, None),
    ("top-5", 5, None),
    ("top-10", 10, None),
    ("top-50", 50, None),
    ("top-p 0.5, K ≤ 64", 64, 0.5),
    ("top-p 0.8, K ≤ 64", 64, 0.8),
    ("top-p 0.95, K ≤ 128", 128, 0.95),
]


def _config(
    out: Path, hidden: int, steps: int, teacher: dict[str, Any] | None = None, lr: float = 1e-3
) -> dict[str, Any]:
    config = {
        "out": str(out),
        "data": {
            "sources": [str(STDLIB / p) for p in ("json", "email", "logging")],
            "seq_len": 32,
            "tokenizer": {"train_vocab_size": 512},
            "val_fraction": 0.05,
            "cache_dir": str(out.parent / "corpus"),
        },
        "model": {
            "family": "llama",
            "hidden_size": hidden,
            "num_layers": 2,
            "num_heads": 4,
            "intermediate_size": 2 * hidden,
        },
        "train": {
            "max_steps": steps,
            "per_device_train_batch_size": 8,
            "learning_rate": lr,
            "warmup_steps": steps // 10,
            "eval_steps": steps,
            "save_steps": steps,
            "logging_steps": steps,
            "disable_tqdm": True,
            "seed": 0,
        },
    }
    if teacher is not None:
        config["teacher"] = teacher
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--teacher-steps", type=int, default=600)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[2.0, 1.0])
    parser.add_argument("--out", default="runs/cache_quality")
    args = parser.parse_args()
    root = Path(args.out)
    if root.exists():
        for child in root.iterdir():
            if child.name != "corpus":
                shutil.rmtree(child)

    teacher = pretrain(validate_config(_config(root / "teacher", 64, args.teacher_steps, lr=3e-3)))
    student = _config(root / "unused", 128, args.steps)
    vocab = student["data"]["tokenizer"]["train_vocab_size"]
    rows = [
        ("no teacher (self-learning)", "–", "–", None),
        ("online, full distribution", "–", f"{2 * vocab} (fp16 logits)", {"path": str(teacher.model_dir)}),
    ]
    for name, k, p in SETTINGS:
        cache = build_cache(teacher.model_dir, validate_config(student), k, root / f"cache-{k}-{p}", top_p=p)
        mean_k = k if p is None else cache.meta["kept"] / cache.rows
        rows.append((f"cache {name}", f"{mean_k:.2f}", f"{cache.bytes_per_token:.1f}", {"cache": str(cache.root)}))
    print(
        f"teacher val loss {final_loss(root / 'teacher'):.4f} after {args.teacher_steps} steps; "
        f"student {args.steps} steps"
    )
    student_config = _config(root / "unused", 128, args.steps)
    print(
        budget_line(
            args.steps,
            tokens_per_step(student_config["train"], student_config["data"]),
            model_param_counts(student_config["model"], vocab=512),
            "student budget",
        )
    )
    print(
        "| teacher | mean tokens kept | bytes/token | "
        + " | ".join(f"student val loss, τ = {t:g} (vs online)" for t in args.temperatures)
        + " |"
    )
    print("|---|---|---|" + "---|" * len(args.temperatures))
    online: dict[float, float] = {}
    for index, (name, kept, size, teacher_cfg) in enumerate(rows):
        cells = []
        for tau in args.temperatures if teacher_cfg is not None else args.temperatures[:1]:  # self-learning has no τ
            run = root / f"student-{index}-t{tau:g}"
            teacher_section = None if teacher_cfg is None else {**teacher_cfg, "steps": args.steps, "temperature": tau}
            pretrain(validate_config(_config(run, 128, args.steps, teacher_section)))
            loss = final_loss(run)
            if name.startswith("online"):
                online[tau] = loss
            versus = tau in online and not name.startswith("online")
            cells.append(f"{loss:.4f}" + (f" ({loss - online[tau]:+.4f})" if versus else ""))
        cells += cells[-1:] * (len(args.temperatures) - len(cells))
        print(f"| {name} | {kept} | {size} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()

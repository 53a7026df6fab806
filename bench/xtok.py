"""Knowledge inheritance from a teacher with another tokenizer, measured against the same-tokenizer reference.

    OMP_NUM_THREADS=1 python -m bench.xtok [--out /work/runs/xtok] [--seeds 0 1 2]
        [--methods alm shared_vocab shared_prefix]

On the demo corpus (the stdlib), two teachers of the same shape are trained identically (same seed, steps,
batch and text per block): one with the student's 2048-token BPE (the same-tokenizer reference) and one with
a 1024-token BPE, whose blocks hold `teacher_seq_len` tokens, the 1024 BPE's count for the text of one
student block (so both teachers see the same text per step). Per seed, the students (same shape, data
order, LR and budget) are: scratch, `same` (KI from the 2048 teacher) and one run per cross-tokenizer
method (KI from the 1024 teacher). Reported, mean ± std over seeds:
- saving: 1 − x*/X, x* the FLOPs (teacher forward passes included) at which a run first reaches scratch's
  final validation loss, X scratch's total FLOPs; `not reached` runs count as 0 and are listed;
- share recovered: saving(method) / saving(same), and the same share of the final-loss gain
  (L_scratch − L_method) / (L_scratch − L_same);
- alignment coverage on the first training blocks: the share of student tokens inside an aligned span
  and at a common boundary.
Finished runs are reused (a run folder with a model), so seeds can be added later. Writes xtok.json and
xtok.md under --out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.protocol import budget_line, final_loss, mean_std, model_param_counts
from kinherit.config import validate_config
from kinherit.data.dataset import PackedBlocks
from kinherit.data.packing import prepare_corpus
from kinherit.data.tokenizer import load_tokenizer
from kinherit.inherit.cross_tokenizer.blocks import build_aligner
from kinherit.inherit.teacher import inspect_teacher
from kinherit.io import atomic_file, write_json
from kinherit.metrics.runs import load_run
from kinherit.metrics.savings import compute_to_reach
from kinherit.train.pretrain import pretrain

SEQ_LEN, BATCH = 128, 16
TEACHER = {"family": "llama", "hidden_size": 64, "num_layers": 2, "num_heads": 4}
STUDENT = {"family": "llama", "hidden_size": 64, "num_layers": 4, "num_heads": 4}
INHERIT = {"alpha0": 1.0, "schedule": "linear", "steps": 1.0, "temperature": 1.0}


def _data(vocab: int, seq_len: int = SEQ_LEN) -> dict[str, Any]:
    return {"sources": ["stdlib"], "tokenizer": {"train_vocab_size": vocab}, "seq_len": seq_len, "val_fraction": 0.02}


def _train(steps: int, lr: float, seed: int, eval_steps: int) -> dict[str, Any]:
    return {
        "max_steps": steps,
        "per_device_train_batch_size": BATCH,
        "learning_rate": lr,
        "eval_steps": eval_steps,
        "save_steps": steps,
        "logging_steps": 10,
        "seed": seed,
        "disable_tqdm": True,
    }


READ_ONLY = False
"""--summarize: never train, read whatever the run folders hold."""


def _run(out: Path, config: dict[str, Any]) -> Path:
    if not READ_ONLY and not (out / "model" / "config.json").is_file():
        print(f"== {out.name}", flush=True)
        pretrain(validate_config({"out": str(out), **config}), resume=(out / "checkpoints").is_dir())
    return out


def _teacher_seq_len(args: argparse.Namespace) -> int:
    """Tokens of the teacher's BPE for the text of one student block, rounded up to a multiple of 8."""
    student = prepare_corpus(validate_config({"data": _data(args.student_vocab)}).data)
    teacher = prepare_corpus(validate_config({"data": _data(args.teacher_vocab)}).data)
    ratio = teacher.train_tokens / student.train_tokens
    return int(-(-SEQ_LEN * ratio // 8) * 8)


def coverage(student_data: dict[str, Any], teacher_dir: Path, blocks: int = 200) -> dict[str, float]:
    """Share of student tokens inside an aligned span, and at a common boundary, over the first training blocks."""
    corpus = prepare_corpus(validate_config({"data": student_data}).data)
    tokenizer = load_tokenizer(corpus.tokenizer_dir)
    spec = inspect_teacher(teacher_dir, tokenizer, SEQ_LEN, "causal", cross_tokenizer=True)
    train = PackedBlocks(corpus.train_path, corpus.dtype, SEQ_LEN)
    aligner, shared, length = build_aligner(spec, tokenizer, train)
    in_span = at_boundary = 0
    for index in range(min(blocks, len(train))):
        aligned = aligner.align(train[index]["input_ids"].numpy())
        ends = np.nonzero(aligned.span_start >= 0)[0]
        in_span += int((ends - aligned.span_start[ends] + 1).sum())
        at_boundary += int((aligned.boundary >= 0).sum())
    total = min(blocks, len(train)) * SEQ_LEN
    return {
        "in_span": in_span / total,
        "at_boundary": at_boundary / total,
        "shared_vocab": len(shared),
        "teacher_len": length,
    }


def _mean_std(values: list[float]) -> tuple[float, float] | None:
    """(mean, std) of `mean_std`, as xtok.json records it; None without values."""
    summary = mean_std(values)
    return None if summary["mean"] is None else (summary["mean"], summary["std"])


def _measure(runs: dict[str, Path]) -> dict[str, Any]:
    """Per run of one seed: steps done, finished or not, val loss at the last evaluation step every run has
    reached, and the saving (None: not reached; a run still training that has not reached it yet is `pending`)."""
    loaded = {name: load_run(path) for name, path in runs.items()}
    common = min(run.evals[-1]["step"] for run in loaded.values())
    scratch = loaded["scratch"]
    target, budget = float(scratch.evals[-1]["val_loss"]), float(scratch.evals[-1]["flops"])
    out = {}
    for name, run in loaded.items():
        finished = (runs[name] / "model" / "config.json").is_file()
        reached = compute_to_reach(run.curve("flops"), target)
        out[name] = {
            "steps": run.evals[-1]["step"],
            "finished": finished,
            "common_step": common,
            "loss_at_common_step": next(float(e["val_loss"]) for e in run.evals if e["step"] == common),
            "final_val_loss": float(run.evals[-1]["val_loss"]),
            "saving": None if reached is None else 1.0 - reached / budget,
            "pending": reached is None and not finished,
        }
    return out


def _summarize(seeds: dict[int, dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Mean ± std over the seeds that have the run (shares against that seed's `same`)."""
    summary = {}
    for name in names:
        rows = {s: r[name] for s, r in seeds.items() if name in r and "same" in r and r["scratch"]["finished"]}
        if not rows:
            continue
        decided = {s: r for s, r in rows.items() if not r["pending"]}
        savings = [r["saving"] or 0.0 for r in decided.values()]
        shares = [
            (r["saving"] or 0.0) / seeds[s]["same"]["saving"] for s, r in decided.items() if seeds[s]["same"]["saving"]
        ]
        gains = [
            (seeds[s]["scratch"]["loss_at_common_step"] - r["loss_at_common_step"])
            / (seeds[s]["scratch"]["loss_at_common_step"] - seeds[s]["same"]["loss_at_common_step"])
            for s, r in rows.items()
        ]
        missed = sum(r["saving"] is None for r in decided.values())
        pending = len(rows) - len(decided)
        note = (f" ({missed} not reached)" if missed else "") + (f" ({pending} pending)" if pending else "")
        summary[name] = {
            "seeds": ", ".join(f"{s} ({r['steps']})" for s, r in rows.items()),
            "loss_at_common_step": _mean_std([r["loss_at_common_step"] for r in rows.values()]),
            "final_val_loss": _mean_std([r["final_val_loss"] for r in rows.values() if r["finished"]]),
            "saving": _mean_std(savings),
            "saving_note": note,
            "share_of_saving": _mean_std(shares),
            "share_of_loss_gain": _mean_std(gains),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/work/runs/xtok")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["alm", "shared_vocab", "shared_prefix"],
        help="teacher.cross_tokenizer methods, each at τ = 1 or as METHOD@τ (e.g. alm@4)",
    )
    parser.add_argument("--student-vocab", type=int, default=2048)
    parser.add_argument("--teacher-vocab", type=int, default=1024)
    parser.add_argument("--teacher-steps", type=int, default=600)
    parser.add_argument("--student-steps", type=int, default=300)
    parser.add_argument("--eval-steps", type=int, default=50)
    parser.add_argument(
        "--train-only",
        action="store_true",
        help="only train the --methods runs of --seeds (another process trains the references), then stop",
    )
    parser.add_argument(
        "--summarize",
        action="store_true",
        help="train nothing: summarise the runs as they are (unfinished ones up to their last evaluation)",
    )
    args = parser.parse_args()
    out = Path(args.out)
    global READ_ONLY
    READ_ONLY = args.summarize

    teacher_len = _teacher_seq_len(args)
    teacher_train = _train(args.teacher_steps, 3e-3, 0, 100)
    same_teacher = _run(
        out / "teacher_same", {"data": _data(args.student_vocab), "model": TEACHER, "train": teacher_train}
    )
    cross_teacher = _run(
        out / "teacher_cross",
        {"data": _data(args.teacher_vocab, teacher_len), "model": TEACHER, "train": teacher_train},
    )

    results: dict[str, Any] = {
        "teacher_seq_len": teacher_len,
        "coverage": coverage(_data(args.student_vocab), cross_teacher / "model"),
        "teachers": {name: final_loss(path) for name, path in (("same", same_teacher), ("cross", cross_teacher))},
        "seeds": {},
    }
    names = ["scratch", "same", *args.methods]
    for seed in args.seeds:
        student = {
            "data": _data(args.student_vocab),
            "model": STUDENT,
            "train": _train(args.student_steps, 2e-3, seed, args.eval_steps),
        }
        runs = (
            {}
            if args.train_only
            else {
                "scratch": _run(out / f"s{seed}_scratch", student),
                "same": _run(
                    out / f"s{seed}_same", {**student, "teacher": {"path": str(same_teacher / "model"), **INHERIT}}
                ),
            }
        )
        for name in args.methods:  # `method` or `method@τ`
            method, _, tau = name.partition("@")
            teacher = {"path": str(cross_teacher / "model"), **INHERIT, "cross_tokenizer": method}
            if tau:
                teacher["temperature"] = float(tau)
            runs[name] = _run(out / f"s{seed}_{name}", {**student, "teacher": teacher})
        if args.train_only:
            continue
        results["seeds"][seed] = _measure(
            {name: path for name, path in runs.items() if (path / "metrics.jsonl").is_file()}
        )
        print(json.dumps({seed: results["seeds"][seed]}), flush=True)

    if args.train_only:
        return
    results["summary"] = summary = _summarize(results["seeds"], names)
    write_json(out / "xtok.json", results)
    cov = results["coverage"]
    scratch_model = out / f"s{args.seeds[0]}_scratch" / "model"
    counts = model_param_counts(scratch_model if scratch_model.is_dir() else STUDENT, args.student_vocab)
    lines = [
        f"teachers llama 64×2, {args.teacher_steps} steps: val loss {results['teachers']['same']:.3f} "
        f"({args.student_vocab} BPE, {SEQ_LEN} tokens/block), {results['teachers']['cross']:.3f} "
        f"({args.teacher_vocab} BPE, {teacher_len} tokens/block); "
        f"students llama 64×4, {args.student_steps} steps × {BATCH}×{SEQ_LEN} tokens, seeds {args.seeds}",
        budget_line(args.student_steps, BATCH * SEQ_LEN, counts, "students' budget"),
        f"alignment on 200 training blocks: {cov['in_span']:.1%} of student tokens in an aligned span, "
        f"{cov['at_boundary']:.1%} at a common boundary; shared vocabulary {cov['shared_vocab']} tokens",
        "",
        "| run | seeds (steps done) | val loss at the last common step | saving vs scratch "
        "| share of the same-tokenizer saving | share of its loss gain at the common step |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        if name not in summary:
            continue
        row = summary[name]
        fmt = lambda v, f: "—" if v is None else f"{v[0]:{f}} ± {v[1]:{f}}"  # noqa: E731
        reference = name in ("scratch", "same")
        lines.append(
            f"| {name} | {row['seeds']} | {fmt(row['loss_at_common_step'], '.3f')} | "
            f"{fmt(row['saving'], '.1%')}"
            f"{row['saving_note']} | {'—' if reference else fmt(row['share_of_saving'], '.0%')} | "
            f"{'—' if reference else fmt(row['share_of_loss_gain'], '.0%')} |"
        )
    with atomic_file(out / "xtok.md") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

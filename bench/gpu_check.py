"""The GPU path, checked in one run (≤ 8 minutes on one H100): throughput, MFU, KI and cache overheads, bf16 growth,
peak memory.

    python -m bench.gpu_check [--out runs/gpu_check]      # on a GPU, bf16
    python -m bench.gpu_check --tiny                      # on the CPU, fp32, tiny sizes (a test runs this)

Prints, one section each:
1. tokens/s of kinherit's trainer vs a plain `transformers.Trainer` on the same model, batch and random token
   blocks (bf16 on a GPU), and their ratio;
2. MFU: tokens/s × training FLOPs per token / the card's dense bf16 peak (`PEAK_BF16`, by device name; on the
   CPU the measured fp32 matmul rate);
3. online KI through `kinherit pretrain`: step time over self-learning vs the FLOPs prediction
   (student training + teacher forward) / student training;
4. cached top-K KI: step time over self-learning (the cache's one-off build time and bytes/token besides);
5. peak GPU memory of an LM (self-learning) step vs an online-KD step (teacher weights and logits included);
6. growth exactness in bf16: the relative deviation of a grown model from its source, both run in bf16, against
   the source's own bf16-vs-fp32 deviation. Growth is exact in real arithmetic; in bf16 each matmul output is
   rounded to 8 significant bits and a duplicated unit splits a sum into halves rounded separately, so the grown
   model's bf16 outputs carry the same kind of round-off as the source's own, not less. The tolerance that holds
   is therefore a small multiple of that floor (2×, `FLOOR_MULTIPLE`), not fp32's 1e-4;
7. staged training through `kinherit pretrain` (bf16 on a GPU): a half-width, half-depth llama grows in depth, then
   in width, then into 4 experts (dense → MoE) inside one run; per growth the held-loss change, per stage the
   tokens/s and peak GPU memory.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
)

from bench.protocol import matmul_peak_gflops, step_time, tokens_per_s
from kinherit.config import validate_config
from kinherit.data.dataset import PackedBlocks
from kinherit.grow import grow
from kinherit.grow.verify import outputs
from kinherit.inherit.cache import build_cache
from kinherit.metrics.flops import flops_per_token
from kinherit.metrics.log import read_metrics
from kinherit.train.objective import ModelLoss
from kinherit.train.pretrain import pretrain
from kinherit.train.trainer import KinheritTrainer

PEAK_BF16 = {
    "H200": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "GH200": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10G": 70e12,
    "A10": 125e12,
    "RTX 4090": 165e12,
}
"""Dense bf16 tensor-core peak (FLOP/s, no sparsity) by a substring of `torch.cuda.get_device_name()`, first match
wins (so "H100 NVL" and "H100 PCIe" come before "H100", the SXM part)."""
FLOOR_MULTIPLE = 2.0
STDLIB = Path(sysconfig.get_paths()["stdlib"])


@dataclass(frozen=True)
class Sizes:
    hidden: int
    layers: int
    heads: int
    vocab: int  # the random-token throughput model's vocabulary
    seq_len: int
    batch: int
    steps: int
    warmup: int
    corpus: tuple[str, ...]  # stdlib packages the KI runs train on
    train_vocab: int  # the KI runs' tokenizer
    top_k: int


GPU = Sizes(
    hidden=1024,
    layers=8,
    heads=16,
    vocab=32000,
    seq_len=512,
    batch=16,
    steps=30,
    warmup=5,
    corpus=("json", "email", "logging", "asyncio", "concurrent", "xml"),
    train_vocab=8192,
    top_k=32,
)
TINY = Sizes(
    hidden=32,
    layers=2,
    heads=4,
    vocab=256,
    seq_len=32,
    batch=4,
    steps=6,
    warmup=2,
    corpus=("json",),
    train_vocab=300,
    top_k=4,
)


def llama(sizes: Sizes, hidden: int, layers: int, vocab: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden * sizes.heads // sizes.hidden),
        intermediate_size=hidden * 8 // 3 // 8 * 8,
        max_position_embeddings=sizes.seq_len,
    )


def trainer_args(out: Path, sizes: Sizes, gpu: bool) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(out),
        max_steps=sizes.steps,
        per_device_train_batch_size=sizes.batch,
        learning_rate=1e-4,
        logging_steps=sizes.steps,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=not gpu,
        bf16=gpu,
        seed=0,
        dataloader_num_workers=0,
    )


def throughput(sizes: Sizes, work: Path, gpu: bool) -> None:
    """Sections 1 and 2."""
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(llama(sizes, sizes.hidden, sizes.layers, sizes.vocab))
    fpt = flops_per_token(base, sizes.seq_len)
    tokens = work / "tokens.bin"
    count = sizes.seq_len * sizes.batch * (sizes.steps + 1)
    np.random.default_rng(0).integers(0, sizes.vocab, count).astype(np.uint16).tofile(tokens)
    blocks = PackedBlocks(tokens, np.uint16, sizes.seq_len)
    plain = Trainer(
        model=copy.deepcopy(base),
        args=trainer_args(work / "plain", sizes, gpu),
        train_dataset=blocks,
        data_collator=default_data_collator,
    )
    ours = KinheritTrainer(
        model=copy.deepcopy(base),
        args=trainer_args(work / "ours", sizes, gpu),
        train_dataset=blocks,
        data_collator=default_data_collator,
        objective=ModelLoss(),
        student_flops=fpt,
        sampler_seed=0,
    )
    step_tokens = sizes.batch * sizes.seq_len
    rates = {
        "transformers.Trainer": tokens_per_s(plain, sizes.warmup, step_tokens),
        "kinherit": tokens_per_s(ours, sizes.warmup, step_tokens),
    }
    peak, source = peak_flops(gpu)
    print(
        f"\n[1] throughput: llama hidden {sizes.hidden}, {sizes.layers} layers, vocab {sizes.vocab}, "
        f"{fpt.matmul_params / 1e6:.1f}M matmul params, batch {sizes.batch}×{sizes.seq_len}, "
        f"{'bf16' if gpu else 'fp32'}"
    )
    for name, rate in rates.items():
        print(f"    {name:>22}: {rate:10.0f} tokens/s")
    print(f"    ratio kinherit / transformers.Trainer: {rates['kinherit'] / rates['transformers.Trainer']:.3f}")
    print(
        f"[2] MFU: {rates['kinherit'] * fpt.train / peak:.1%} of {peak / 1e12:.4g} TFLOP/s ({source}); "
        f"training FLOPs/token {fpt.train / 1e6:.1f}M"
    )


def peak_flops(gpu: bool) -> tuple[float, str]:
    """The card's dense bf16 peak from `PEAK_BF16`, or on the CPU the measured fp32 matmul rate."""
    if not gpu:
        return matmul_peak_gflops(512, 5) * 1e9, "CPU: measured fp32 matmul rate"
    name = torch.cuda.get_device_name()
    for key, value in PEAK_BF16.items():
        if key in name:
            return value, f"{name}: dense bf16 peak"
    sys.exit(f"no bf16 peak for {name!r}: add it to PEAK_BF16 in bench/gpu_check.py")


def run_config(
    out: Path, sizes: Sizes, hidden: int, layers: int, steps: int, gpu: bool, teacher: dict[str, Any] | None = None
) -> dict[str, Any]:
    config = {
        "out": str(out),
        "data": {
            "sources": [str(STDLIB / p) for p in sizes.corpus],
            "seq_len": sizes.seq_len,
            "val_fraction": 0.05,
            "tokenizer": {"train_vocab_size": sizes.train_vocab},
            "cache_dir": str(out.parent / "corpus"),
        },
        "model": {
            "family": "llama",
            "hidden_size": hidden,
            "num_layers": layers,
            "num_heads": max(1, hidden * sizes.heads // sizes.hidden),
        },
        "train": {
            "max_steps": steps,
            "per_device_train_batch_size": sizes.batch,
            "eval_steps": steps,
            "save_steps": steps,
            "logging_steps": 1,
            "disable_tqdm": True,
            "seed": 0,
            "bf16": gpu,
        },
    }
    if teacher is not None:
        config["teacher"] = teacher
    return config


def inheritance(sizes: Sizes, work: Path, gpu: bool) -> None:
    """Sections 3, 4 and 5."""
    teacher = pretrain(
        validate_config(run_config(work / "teacher", sizes, sizes.hidden // 2, sizes.layers // 2, 2, gpu))
    )
    start = time.perf_counter()
    unused = validate_config(run_config(work / "unused", sizes, sizes.hidden, sizes.layers, sizes.steps, gpu))
    cache = build_cache(teacher.model_dir, unused, sizes.top_k, work / "cache")
    cache_seconds = time.perf_counter() - start
    cache_bytes = sum(p.stat().st_size for p in Path(cache.root).iterdir())
    cached_tokens = cache.rows
    runs = {
        "self-learning": None,
        "online KI": {"path": str(teacher.model_dir), "steps": sizes.steps},
        f"cached KI top-{sizes.top_k}": {"cache": str(cache.root), "steps": sizes.steps},
    }
    times, flops, memory = {}, {}, {}
    for i, (name, section) in enumerate(runs.items()):
        if gpu:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        out = work / f"run{i}"
        pretrain(validate_config(run_config(out, sizes, sizes.hidden, sizes.layers, sizes.steps, gpu, section)))
        times[name] = step_time(out, skip=sizes.warmup)
        last = [e for e in read_metrics(out / "metrics.jsonl") if "loss" in e][-1]
        flops[name] = last["flops"] / (last["flops"] - last.get("teacher_flops", 0))
        memory[name] = torch.cuda.max_memory_allocated() if gpu else None
    base = times["self-learning"]
    print(
        f"\n[3,4] KI through kinherit pretrain: student hidden {sizes.hidden}×{sizes.layers}, teacher "
        f"{sizes.hidden // 2}×{sizes.layers // 2}, batch {sizes.batch}×{sizes.seq_len}"
    )
    print(f"    {'run':>18} | {'step s':>8} | {'time ratio':>10} | {'FLOPs ratio':>11}")
    for name in runs:
        print(f"    {name:>18} | {times[name]:8.4f} | {times[name] / base:10.3f} | {flops[name]:11.3f}")
    print(
        f"    online KI overhead {times['online KI'] / base - 1:+.1%} vs predicted {flops['online KI'] - 1:+.1%}; "
        f"cached top-{sizes.top_k} overhead {times[f'cached KI top-{sizes.top_k}'] / base - 1:+.1%} (predicted +0%, "
        f"no teacher runs); the cache took {cache_seconds:.1f} s to build, "
        f"{cache_bytes / cached_tokens:.0f} bytes/token "
        f"over {cached_tokens:,} tokens (its FLOPs ratio counts that one-off teacher pass)"
    )
    if gpu:
        lm, kd = memory["self-learning"], memory["online KI"]
        print(
            f"[5] peak GPU memory: LM step {lm / 2**30:.2f} GiB, online KD step {kd / 2**30:.2f} GiB ({kd / lm:.2f}x)"
        )
    else:
        print("[5] peak GPU memory: no GPU (CPU run)")


@torch.no_grad()
def growth_in_bf16(sizes: Sizes, gpu: bool) -> None:
    """Section 6: max |Δlogits| / max(1, max |logits|) of grown vs source, both in bf16, against the source's own
    bf16 vs fp32 deviation (the round-off floor)."""
    device, dtype = ("cuda", torch.bfloat16) if gpu else ("cpu", torch.float32)
    torch.manual_seed(0)
    source = AutoModelForCausalLM.from_config(llama(sizes, sizes.hidden // 2, sizes.layers // 2, sizes.vocab)).eval()
    grown = grow(source, hidden_size=sizes.hidden, num_layers=sizes.layers, verify=False).model
    ids = torch.randint(0, sizes.vocab, (2, sizes.seq_len))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def logits(model: torch.nn.Module, run_dtype: torch.dtype) -> torch.Tensor:
        return outputs(copy.deepcopy(model).to(device, run_dtype), "causal_lm", batch)[0]

    exact = logits(source, torch.float32)
    scale = max(1.0, float(exact.abs().max()))
    floor = float((logits(source, dtype) - exact).abs().max()) / scale
    deviation = float((logits(grown, dtype) - logits(source, dtype)).abs().max()) / scale
    print(
        f"\n[6] growth in {str(dtype).removeprefix('torch.')}: hidden {sizes.hidden // 2}→{sizes.hidden}, layers "
        f"{sizes.layers // 2}→{sizes.layers}, clone + identity, 0 dB noise: relative deviation "
        f"{deviation:.2e}; the "
        f"source's own {str(dtype).removeprefix('torch.')}-vs-fp32 deviation {floor:.2e}"
    )
    if gpu:
        holds = deviation <= FLOOR_MULTIPLE * floor
        print(
            f"    tolerance {FLOOR_MULTIPLE:g}× the floor = {FLOOR_MULTIPLE * floor:.2e}: "
            f"{'holds' if holds else 'FAILS'} "
            "(bf16 rounds every matmul output to 8 bits; growth splits sums into separately rounded halves)"
        )
    else:
        print(f"    fp32: within the exact tolerance 1e-4: {deviation <= 1e-4}")


class StagePeaks(TrainerCallback):
    """Peak GPU memory of each stage (each stage of a staged run is one `train()` of its own trainer)."""

    def __init__(self) -> None:
        self.peaks: list[int] = []

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self.peaks.append(torch.cuda.max_memory_allocated())


def staged(sizes: Sizes, work: Path, gpu: bool) -> None:
    """Section 7: depth, width, then dense → MoE growth inside one bf16 run."""
    per_stage = max(2, sizes.steps // 2)
    config = run_config(work / "staged", sizes, sizes.hidden // 2, sizes.layers // 2, 4 * per_stage, gpu)
    config["train"].update(save_steps=per_stage, eval_steps=per_stage)
    config["growth"] = [
        {"at_step": per_stage, "num_layers": sizes.layers},
        {"at_step": 2 * per_stage, "hidden_size": sizes.hidden, "num_heads": sizes.heads},
        {"at_step": 3 * per_stage, "num_experts": 4},
    ]
    peaks = StagePeaks()
    pretrain(validate_config(config), callbacks=[peaks] if gpu else [])
    events = read_metrics(work / "staged" / "metrics.jsonl")
    print(
        f"\n[7] staged training: {sizes.hidden // 2}×{sizes.layers // 2} → {sizes.layers} layers → hidden "
        f"{sizes.hidden} → 4 experts, {per_stage} steps a stage, batch {sizes.batch}×{sizes.seq_len}"
    )
    for event in (e for e in events if "growth" in e):
        print(
            f"    growth {event['growth']} at step {event['step']}: held-loss change {event['held_loss_change']:+.1e}"
        )
    print(f"    {'stage':>5} | {'tokens/s':>10} | {'peak GiB':>8}")
    for stage in range(4):
        steps = step_time(work / "staged", skip=1, stage=stage)  # the stage's first step waits for its growth
        peak = f"{peaks.peaks[stage] / 2**30:8.2f}" if gpu and stage < len(peaks.peaks) else f"{'-':>8}"
        print(f"    {stage:>5} | {sizes.batch * sizes.seq_len / steps:10.0f} | {peak}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny sizes on the CPU in fp32 (what the test runs)")
    parser.add_argument("--out", help="work folder (default: a temporary one, removed at the end)")
    args = parser.parse_args()
    gpu = not args.tiny
    if gpu and not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --tiny on the CPU")
    sizes = TINY if args.tiny else GPU
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="gpu-check-"))
    start = time.perf_counter()
    try:
        device = torch.cuda.get_device_name() if gpu else "CPU"
        print(f"gpu_check on {device}, torch {torch.__version__}, {'bf16' if gpu else 'fp32 (--tiny)'}")
        throughput(sizes, work, gpu)
        inheritance(sizes, work, gpu)
        growth_in_bf16(sizes, gpu)
        staged(sizes, work, gpu)
        print(f"\ntotal {time.perf_counter() - start:.0f} s")
    finally:
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

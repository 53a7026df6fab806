"""Training throughput of `kinherit pretrain`'s trainer vs a plain `transformers.Trainer`, same process.

Both train the same freshly initialised model on the same packed blocks with the same batch and
optimizer settings; steady-state tokens/s is timed between optimizer steps after a warm-up. Also
prints model FLOP utilisation against this machine's measured fp32 matmul peak.

    python -m bench.throughput [--hidden 256 --layers 4 --seq-len 256 --batch 16 --steps 30]
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Trainer, TrainingArguments, default_data_collator

from bench.protocol import matmul_peak_gflops, tokens_per_s
from kinherit.data.dataset import PackedBlocks
from kinherit.metrics.flops import flops_per_token
from kinherit.train.objective import ModelLoss
from kinherit.train.trainer import KinheritTrainer


def _args(out: Path, ns: argparse.Namespace) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(out),
        max_steps=ns.steps,
        per_device_train_batch_size=ns.batch,
        learning_rate=1e-3,
        logging_steps=10,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="alternate the two trainers this many times")
    ns = parser.parse_args()

    config = LlamaConfig(
        vocab_size=ns.vocab,
        hidden_size=ns.hidden,
        num_hidden_layers=ns.layers,
        num_attention_heads=max(1, ns.hidden // 64),
        intermediate_size=int(8 * ns.hidden / 3) // 8 * 8,
        max_position_embeddings=ns.seq_len,
    )
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(config)
    fpt = flops_per_token(base, ns.seq_len)
    peak = matmul_peak_gflops()

    with tempfile.TemporaryDirectory() as tmp:
        tokens = Path(tmp) / "tokens.bin"
        count = ns.seq_len * ns.batch * (ns.steps + 1)
        np.random.default_rng(0).integers(0, ns.vocab, count).astype(np.uint16).tofile(tokens)
        blocks = PackedBlocks(tokens, np.uint16, ns.seq_len)
        results: dict[str, list[float]] = {"transformers.Trainer": [], "kinherit": []}
        for _ in range(ns.repeats):
            plain = Trainer(
                model=copy.deepcopy(base),
                args=_args(Path(tmp) / "plain", ns),
                train_dataset=blocks,
                data_collator=default_data_collator,
            )
            results["transformers.Trainer"].append(tokens_per_s(plain, ns.warmup, ns.batch * ns.seq_len))
            ours = KinheritTrainer(
                model=copy.deepcopy(base),
                args=_args(Path(tmp) / "ours", ns),
                train_dataset=blocks,
                data_collator=default_data_collator,
                objective=ModelLoss(),
                student_flops=fpt,
                sampler_seed=0,
            )
            results["kinherit"].append(tokens_per_s(ours, ns.warmup, ns.batch * ns.seq_len))

    print(
        f"model: llama hidden={ns.hidden} layers={ns.layers} vocab={ns.vocab}, "
        f"{fpt.matmul_params / 1e6:.2f}M matmul params; "
        f"batch {ns.batch}×{ns.seq_len} tokens; threads={torch.get_num_threads()} (cpu count {os.cpu_count()})"
    )
    print(f"measured fp32 matmul peak: {peak:.1f} GFLOP/s; training FLOPs/token: {fpt.train / 1e6:.2f} M")
    for name, values in results.items():
        best = max(values)
        mfu = best * fpt.train / (peak * 1e9)
        print(f"{name:>22}: {best:9.0f} tokens/s (runs: {', '.join(f'{v:.0f}' for v in values)})  MFU {mfu:.1%}")
    ratio = max(results["kinherit"]) / max(results["transformers.Trainer"])
    print(f"ratio kinherit / transformers.Trainer: {ratio:.3f} (target >= 1.0)")


if __name__ == "__main__":
    main()

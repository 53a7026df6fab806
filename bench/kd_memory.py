"""Peak memory of one training step (forward + backward): LM only vs knowledge inheritance, 32k vocabulary.

    python -m bench.kd_memory [--vocab 32000] [--batch 8] [--seq-len 256] [--block-rows 1024]

Each variant runs in its own subprocess: a warm-up step, then the kernel's peak-RSS counter is reset
(`/proc/self/clear_refs` ← 5) and one measured step reports VmHWM − VmRSS before it. The KD steps run a
frozen teacher (same small shape) inside the step, as `KITrainer` does. `naive` is the same KD written as
plain autograd over all positions at once, for comparison with the row-blocked loss of `kinherit.kd.losses`.
The blocked loss keeps one extra (B, T, V) tensor (its gradient) plus a few (block_rows, V) temporaries, so its
saving grows with B·T / block_rows.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
from pathlib import Path

VARIANTS = ("lm", "kd_full", "kd_topk", "kd_full_naive")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _measure(variant: str, vocab: int, batch: int, seq_len: int, block_rows: int) -> float:
    """MiB above the pre-step resident set at the peak of one step."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from kinherit.kd.losses import TopK, kd_loss

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=seq_len,
    )
    student, teacher = LlamaForCausalLM(config), LlamaForCausalLM(config).eval().requires_grad_(False)
    input_ids = torch.randint(vocab, (batch, seq_len))

    def naive(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float = 2.0) -> torch.Tensor:
        log_q, log_p = (teacher_logits / tau).log_softmax(-1), (student_logits / tau).log_softmax(-1)
        return tau**2 * (log_q.exp() * (log_q - log_p)).sum(-1).mean()

    def step() -> None:
        out = student(input_ids=input_ids, labels=input_ids)
        loss = out.loss
        if variant != "lm":
            with torch.no_grad():
                teacher_logits = teacher(input_ids=input_ids).logits  # (B, T, V)
            if variant == "kd_full_naive":
                kd = naive(out.logits, teacher_logits)
            else:
                target = TopK.from_logits(teacher_logits, 10) if variant == "kd_topk" else teacher_logits
                kd = kd_loss(out.logits, target, 2.0, block_rows=block_rows)
                del target
            del teacher_logits  # as in KITrainer: the teacher's output lives only through the loss call
            loss = 0.5 * loss + 0.5 * kd
        del out
        loss.backward()
        student.zero_grad(set_to_none=False)

    step()
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    step()
    return (_status_kib("VmHWM") - before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--block-rows", type=int, default=1024, help="positions per row block of the KD loss")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(_measure(args.variant, args.vocab, args.batch, args.seq_len, args.block_rows)))
        return

    full_tensor_mib = args.batch * args.seq_len * args.vocab * 4 / 2**20
    print(
        f"vocab {args.vocab}, batch {args.batch}×{args.seq_len}, KD blocks of {args.block_rows} positions: "
        f"one fp32 (B, T, V) tensor = {full_tensor_mib:.0f} MiB"
    )
    peaks = {}
    for variant in VARIANTS:
        cmd = [
            sys.executable,
            __file__,
            "--variant",
            variant,
            "--vocab",
            str(args.vocab),
            "--batch",
            str(args.batch),
            "--seq-len",
            str(args.seq_len),
            "--block-rows",
            str(args.block_rows),
        ]
        child = subprocess.run(cmd, check=True, capture_output=True, text=True)
        peaks[variant] = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"{'step':>14} | {'peak MiB':>9} | {'× LM-only':>9} | {'(B,T,V) tensors':>15}")
    for variant, peak in peaks.items():
        print(f"{variant:>14} | {peak:9.0f} | {peak / peaks['lm']:9.2f} | {peak / full_tensor_mib:15.1f}")


if __name__ == "__main__":
    main()

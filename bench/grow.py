"""Time and peak memory of `kinherit grow` on a >= 100M-parameter target.

    python -m bench.grow [--hidden 512] [--layers 12] [--vocab 32000] [--width clone] [--depth identity]

A random-init Llama (hidden H, FFN 2.75 H, head_dim 64, GQA 2:1) is saved to a temporary folder,
then grown to 2H in a *fresh* process running `grow_folder` (load, grow, verify, save, reload,
verify), whose peak RSS (getrusage ru_maxrss = VmHWM) is compared with the target's fp32 size.
The target is assembled tensor by tensor into a meta-device model (`assign=True`), so the peak
should stay under 2x the target size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_mib() -> float:
    """Current RSS in MiB, from /proc/self/status (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(src: str, out: str, hidden: int, width: str, depth: str, layers: int) -> None:
    """Run in a fresh process: import, then grow; print one JSON line of measurements."""
    import torch

    from kinherit.grow import grow_folder

    torch.manual_seed(0)
    baseline = _rss_mib()
    start = time.perf_counter()
    report = grow_folder(src, out, hidden_size=hidden, width=width, depth=depth, num_layers=layers)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mib": peak,
                "baseline_mib": baseline,
                "source_params": report.source_params,
                "target_params": report.target_params,
                "max_deviation": report.max_deviation,
                "exact": report.exact_claimed,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512, help="source hidden size (target: 2x)")
    parser.add_argument("--layers", type=int, default=12, help="source layers")
    parser.add_argument("--target-layers", type=int, default=None, help="target layers (default: same)")
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--width", default="clone")
    parser.add_argument("--depth", default="identity")
    parser.add_argument("--child", nargs=2, metavar=("SRC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, 2 * args.hidden, args.width, args.depth, args.target_layers or args.layers)
        return

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    h = args.hidden
    config = LlamaConfig(
        hidden_size=h,
        intermediate_size=h * 11 // 4,
        num_hidden_layers=args.layers,
        num_attention_heads=h // 64,
        num_key_value_heads=h // 128,
        vocab_size=args.vocab,
        tie_word_embeddings=False,
    )
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(Path(tmp) / "src")
        cmd = [
            sys.executable,
            __file__,
            "--child",
            str(Path(tmp) / "src"),
            str(Path(tmp) / "out"),
            "--hidden",
            str(h),
            "--width",
            args.width,
            "--depth",
            args.depth,
            "--layers",
            str(args.layers),
            *(["--target-layers", str(args.target_layers)] if args.target_layers else []),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode:
            sys.exit(result.stderr)
        m = json.loads(result.stdout.strip().splitlines()[-1])
    target_mib = m["target_params"] * 4 / 2**20
    print(
        f"grow llama hidden {h}->{2 * h}, {args.layers}->{args.target_layers or args.layers} layers, "
        f"vocab {args.vocab}, width={args.width} depth={args.depth}"
    )
    print(f"  source params        {m['source_params'] / 1e6:10.1f} M")
    print(f"  target params        {m['target_params'] / 1e6:10.1f} M  ({target_mib:.0f} MiB fp32)")
    print(f"  time (load, grow, verify, save, reload, verify)  {m['seconds']:.1f} s")
    print(f"  peak RSS             {m['peak_mib']:10.0f} MiB  (after imports: {m['baseline_mib']:.0f} MiB)")
    print(f"  peak / target size   {m['peak_mib'] / target_mib:10.2f}")
    print(f"  (peak - imports) / target size  {(m['peak_mib'] - m['baseline_mib']) / target_mib:.2f}")
    print(f"  max deviation        {m['max_deviation']:10.2e}  (exact claimed: {m['exact']})")


if __name__ == "__main__":
    main()

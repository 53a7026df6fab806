"""Peak memory of `kinherit grow --stream` on a target of >= 4 GB (bf16).

    python -m bench.grow_stream [--hidden 2048] [--layers 8] [--target-layers 10] [--vocab 32000] [--dir /tmp]

A random Llama in bf16 (hidden H, FFN 2.6875 H, head_dim 128, untied head) is written to disk shard by shard
(0.5 GB shards with an index; never whole in memory), then grown to 2H and `--target-layers` layers by
`kinherit grow SRC OUT --stream` in a fresh process under `/usr/bin/time -v`, whose "Maximum resident set size"
is compared with the largest shard (source or target) and with the RSS of the same process after its imports.
Both folders are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GB = 10**9


def write_source(folder: Path, hidden: int, layers: int, vocab: int) -> None:
    """A random bf16 Llama, one tensor at a time (weights N(0, 0.02²), norm gains 1 + N(0, 0.1²))."""
    import torch
    import transformers

    from kinherit.grow.api import meta_model
    from kinherit.grow.shards import ShardWriter

    config = transformers.LlamaConfig(
        hidden_size=hidden,
        intermediate_size=hidden * 43 // 16,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 128,
        num_key_value_heads=hidden // 128,
        vocab_size=vocab,
        max_position_embeddings=512,
        tie_word_embeddings=False,
    )
    config.dtype = torch.bfloat16
    folder.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    writer = ShardWriter(folder, GB // 2)
    for key, p in meta_model(config.to_dict(), "LlamaForCausalLM").state_dict().items():
        x = torch.randn(p.shape, generator=gen)
        x = 1 + 0.1 * x if "norm" in key else 0.02 * x
        writer.add(key, x.to(torch.bfloat16))
    writer.finish()
    config.save_pretrained(folder)


def folder_bytes(folder: Path) -> tuple[int, int]:
    """(bytes of all safetensors files, bytes of the largest)."""
    sizes = [p.stat().st_size for p in folder.glob("*.safetensors")]
    return sum(sizes), max(sizes)


def peak_rss(command: list[str]) -> tuple[int, float, str]:
    """(peak RSS in bytes, seconds, stdout) of `command` under /usr/bin/time -v."""
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return kib * 1024, seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--target-layers", type=int, default=10)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="grow-stream-", dir=args.dir))
    src, out = work / "src", work / "out"
    try:
        write_source(src, args.hidden, args.layers, args.vocab)
        python = [sys.executable, "-m", "kinherit.cli"]
        imports, _, _ = peak_rss([sys.executable, "-c", "import kinherit.cli, kinherit.grow.stream, kinherit.grow.api"])
        command = [
            *python,
            "grow",
            str(src),
            str(out),
            "--stream",
            "--hidden-size",
            str(2 * args.hidden),
            "--num-layers",
            str(args.target_layers),
        ]
        rss, seconds, stdout = peak_rss(command)
        (source_bytes, source_shard), (target_bytes, target_shard) = folder_bytes(src), folder_bytes(out)
        report = json.loads((out / "growth.json").read_text())["report"]
        largest = max(source_shard, target_shard)
        print(stdout)
        print(
            f"command: kinherit grow SRC OUT --stream --hidden-size {2 * args.hidden} --num-layers {args.target_layers}"
        )
        print(
            f"source {source_bytes / GB:.2f} GB (largest shard {source_shard / GB:.2f} GB), "
            f"target {target_bytes / GB:.2f} GB bf16 (largest shard {target_shard / GB:.2f} GB), "
            f"{report['target_params']:,} parameters"
        )
        print(
            f"peak RSS {rss / GB:.2f} GB = {rss / largest:.2f}x the largest shard = "
            f"{rss / target_bytes:.2f}x the target; "
            f"after the imports alone {imports / GB:.2f} GB; {seconds:.0f} s (nice {os.nice(0)})"
        )
        print(
            f"verification: max relative deviation {report['max_deviation']:.2e} "
            f"(tolerance {report['tolerance']:.2e}, "
            f"passed {report['passed']})"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Corpus packing: kinherit's streaming packer vs a nanoGPT-style `datasets` pipeline, same data and tokenizer.

For each size, a text corpus (one file of English-like paragraphs: words drawn from a Zipf law over
the standard library's vocabulary) is generated on disk and packed into train/val token files by
  kinherit   `prepare_corpus` (one file → contiguous split; streaming, Rust batch encoding on all cores)
  baseline   `load_dataset("text", sample_by="paragraph")` → `train_test_split` → `map(num_proc=2)`
             tokenization → `np.memmap` concatenation in 1024 shards (nanoGPT's prepare.py)
Each job runs in its own process; its wall time (imports excluded) gives MB/s of text, and psutil
polling every 50 ms gives the peak RSS summed over the job's process tree. Variants alternate order
between repeats; the machine is shared, so compare ratios within a size, not absolute numbers.

    python -m bench.pack                       # sizes 100M×3 (interleaved), 1G, 2G
    python -m bench.pack --sizes 100M,100M,100M,2G:kinherit --workdir /tmp/packbench   # `:variant` runs one only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

VAL_FRACTION = 0.005
GiB = 1 << 30


def _size(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([MG])", text.upper()).groups()
    return int(float(number) * (1_000_000 if unit == "M" else 1_000_000_000))


def generate(path: Path, nbytes: int, seed: int = 0) -> None:
    """English-like paragraphs: Zipf(1.2) words over the stdlib's 30k most common identifiers/words."""
    from kinherit.data.sources import stdlib_files

    counts: Counter[str] = Counter()
    for file in stdlib_files():
        counts.update(re.findall(r"[A-Za-z]{2,}", file.read_text(errors="replace")))
    words = np.array([w.lower() for w, _ in counts.most_common(30_000)])
    rng = np.random.default_rng(seed)
    written = 0
    with path.open("w") as handle:
        while written < nbytes:
            draws = rng.zipf(1.2, 200_000)
            picked = words[draws[draws <= len(words)] - 1]
            lines = [" ".join(picked[i : i + 14]) + "." for i in range(0, len(picked) - 14, 14)]
            text = "".join(
                "\n".join(lines[i : i + 8]) + "\n\n" for i in range(0, len(lines) - 8, 8)
            )  # paragraphs of 8 lines
            handle.write(text[: nbytes - written])
            written += len(text[: nbytes - written])


def job_kinherit(corpus: Path, tokenizer: Path, out: Path) -> dict:
    from kinherit.config import DataConfig
    from kinherit.data.packing import prepare_corpus

    start = time.perf_counter()
    packed = prepare_corpus(
        DataConfig(
            sources=[str(corpus)], tokenizer={"path": str(tokenizer)}, val_fraction=VAL_FRACTION, cache_dir=str(out)
        )
    )
    return {"seconds": time.perf_counter() - start, "tokens": packed.train_tokens + packed.val_tokens}


def job_baseline(corpus: Path, tokenizer: Path, out: Path) -> dict:
    """nanoGPT's data/openwebtext/prepare.py with this tokenizer (batched map: its best case)."""
    from datasets import load_dataset
    from transformers import AutoTokenizer

    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(tokenizer))
    eos = tok.eos_token_id
    data = load_dataset("text", data_files=str(corpus), sample_by="paragraph", split="train", cache_dir=str(out / "hf"))
    split = data.train_test_split(test_size=VAL_FRACTION, seed=2357, shuffle=True)

    def process(batch: dict) -> dict:
        ids = [row + [eos] for row in tok(batch["text"], add_special_tokens=False)["input_ids"]]
        return {"ids": ids, "len": [len(row) for row in ids]}

    tokens = 0
    for name, dset in split.items():
        tokenized = dset.map(process, batched=True, remove_columns=["text"], num_proc=2, desc=f"tokenize {name}")
        length = int(np.sum(tokenized["len"], dtype=np.uint64))
        arr = np.memmap(out / f"{name}.bin", dtype=np.uint16, mode="w+", shape=(length,))
        shards = min(1024, len(tokenized))
        index = 0
        for shard in range(shards):
            batch = tokenized.shard(num_shards=shards, index=shard, contiguous=True).with_format("numpy")
            arr_batch = np.concatenate(batch["ids"])
            arr[index : index + len(arr_batch)] = arr_batch
            index += len(arr_batch)
        arr.flush()
        tokens += length
    return {"seconds": time.perf_counter() - start, "tokens": tokens}


def run_job(variant: str, corpus: Path, tokenizer: Path, out: Path) -> dict:
    """Run one job in a child process; poll the RSS of its whole process tree."""
    import psutil

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    result = out / "result.json"
    cmd = [
        sys.executable,
        __file__,
        "--job",
        variant,
        "--corpus",
        str(corpus),
        "--tokenizer",
        str(tokenizer),
        "--out",
        str(out),
    ]
    env = {**os.environ, "TQDM_DISABLE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env)
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.05)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} job failed with exit code {proc.returncode}")
    measured = json.loads(result.read_text())
    mb = corpus.stat().st_size / 1e6
    row = {
        "variant": variant,
        "size_mb": round(mb),
        "seconds": round(measured["seconds"], 2),
        "mb_per_s": round(mb / measured["seconds"], 3),
        "tokens": measured["tokens"],
        "peak_rss_gib": round(peak / GiB, 3),
    }
    shutil.rmtree(out, ignore_errors=True)
    return row


def summarize(rows: list[dict]) -> None:
    print(f"\n{'size':>8} {'variant':>9} {'MB/s (median, runs)':>28} {'peak RSS GiB':>14}")
    for size in sorted({r["size_mb"] for r in rows}):
        medians = {}
        for variant in ("kinherit", "baseline"):
            sel = [r for r in rows if r["size_mb"] == size and r["variant"] == variant]
            if not sel:
                continue
            speeds = [r["mb_per_s"] for r in sel]
            medians[variant] = statistics.median(speeds)
            runs = ", ".join(f"{s:.2f}" for s in speeds)
            peak = max(r["peak_rss_gib"] for r in sel)
            print(f"{size:>7}M {variant:>9} {medians[variant]:>8.2f} ({runs}){'':>4} {peak:>10.2f}")
        if len(medians) == 2:
            print(f"{'':>8} {'ratio':>9} {medians['kinherit'] / medians['baseline']:>8.2f}× kinherit / baseline")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100M,100M,100M,1G,2G")
    parser.add_argument("--workdir", default="/tmp/kinherit-pack-bench")
    parser.add_argument("--results", default="runs/bench_pack.json")
    parser.add_argument("--job", choices=["kinherit", "baseline"])
    parser.add_argument("--corpus")
    parser.add_argument("--tokenizer")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.job:
        job = job_kinherit if args.job == "kinherit" else job_baseline
        out = Path(args.out)
        (out / "result.json").write_text(json.dumps(job(Path(args.corpus), Path(args.tokenizer), out)))
        return

    from kinherit.data.tokenizer import train_bpe

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    plan = [(_size(s.split(":")[0]), s.split(":")[1:]) for s in args.sizes.split(",")]
    tokenizer = work / "tokenizer"
    sample = work / "sample.txt"
    generate(sample, 20_000_000, seed=1)  # the shared tokenizer: a 4096 BPE trained on a separate 20 MB
    train_bpe(iter([sample.read_text()]), 4096, tokenizer)
    sample.unlink()
    rows: list[dict] = []
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    corpus, current = work / "corpus.txt", None
    for repeat, (size, only) in enumerate(plan):
        if size != current:
            print(f"generating {size / 1e6:.0f} MB ...", flush=True)
            generate(corpus, size)
            current = size
        order = ("kinherit", "baseline") if repeat % 2 == 0 else ("baseline", "kinherit")
        for variant in [v for v in order if not only or v in only]:
            row = run_job(variant, corpus, tokenizer, work / variant)
            rows.append(row)
            print(json.dumps(row), flush=True)
            results.write_text(json.dumps(rows, indent=1))
    corpus.unlink(missing_ok=True)
    summarize(rows)


if __name__ == "__main__":
    main()

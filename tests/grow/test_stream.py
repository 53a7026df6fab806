"""Streaming growth (`kinherit grow --stream`): the same weights as the in-memory path (bit for bit, cast to the
source's dtype), shards with an index, verification module by module, and the OUT_DIR rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_models import ARCH, tiny_model

from kinherit.errors import KinheritError
from kinherit.grow import grow_folder, grow_streaming
from kinherit.grow.api import meta_model
from kinherit.grow.offload import stored_names
from kinherit.grow.shards import FolderTensors, ShardWriter, read_header
from kinherit.hf_folder import load_architecture, read_config

CASES = [
    ("llama", False, torch.float32, {"hidden_size": 64, "num_layers": 3}),
    ("llama", True, torch.bfloat16, {"hidden_size": 64, "num_layers": 3}),
    ("gpt2", True, torch.float32, {"hidden_size": 64, "num_layers": 3, "width": "net2net"}),
    ("bert", True, torch.bfloat16, {"hidden_size": 64}),
]


def _weights(folder: Path) -> FolderTensors:
    """Every parameter of the folder's model under every one of its names (tied ones included)."""
    config = read_config(folder)
    model = meta_model(config.to_dict(), config.architectures[0])
    return FolderTensors(folder, aliases=stored_names(model, folder))


@pytest.mark.parametrize(("family", "tied", "dtype", "options"), CASES, ids=lambda c: str(c).removeprefix("torch."))
def test_streamed_weights_are_the_in_memory_ones(tmp_path: Path, family, tied, dtype, options):
    src = tmp_path / "src"
    tiny_model(family, tied=tied).to(dtype).save_pretrained(src, max_shard_size="20KB")  # a sharded source
    assert (src / "model.safetensors.index.json").is_file()
    memory = grow_folder(src, tmp_path / "memory", seed=3, **options)
    streamed = grow_streaming(src, tmp_path / "streamed", seed=3, max_shard_bytes=30_000, **options)
    a, b = _weights(tmp_path / "memory"), _weights(tmp_path / "streamed")
    assert set(a) == set(b)
    for key in a:
        assert b[key].dtype == dtype, key
        assert torch.equal(a[key].to(dtype), b[key]), key  # in-memory is fp32: cast, then bit for bit
    index = json.loads((tmp_path / "streamed" / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    headers = [read_header(tmp_path / "streamed" / s)[1] for s in shards]
    sizes = [
        (sum(e["data_offsets"][1] - e["data_offsets"][0] for e in header.values()), len(header)) for header in headers
    ]
    assert len(shards) > 1 and all(size <= 30_000 or count == 1 for size, count in sizes)  # a larger tensor: alone
    assert streamed.passed and streamed.comparisons[0].model == "streamed"
    if dtype == torch.float32:  # the same weights and the same computation: the same deviation
        assert streamed.max_deviation == pytest.approx(memory.max_deviation, rel=1e-6, abs=1e-9)
    reloaded = load_architecture(tmp_path / "streamed", ARCH[family])  # transformers reads it, tied weights too
    assert next(reloaded.parameters()).dtype == torch.float32
    growth = json.loads((tmp_path / "streamed" / "growth.json").read_text())
    assert growth["stream"]["dtype"] == str(dtype).removeprefix("torch.")


@pytest.mark.parametrize("family", ["gemma2", "phi3", "gpt_neox", "olmo2"])
def test_streamed_families_match_the_in_memory_growth(tmp_path: Path, family):
    """(1 + w) norms and the scaled embedding, packed q|k|v, per-head interleaving with `embed_out`, branch norms."""
    tiny_model(family).save_pretrained(tmp_path / "src")
    memory = grow_folder(tmp_path / "src", tmp_path / "memory", hidden_size=64, num_layers=3, seed=1)
    streamed = grow_streaming(tmp_path / "src", tmp_path / "streamed", hidden_size=64, num_layers=3, seed=1)
    a, b = _weights(tmp_path / "memory"), _weights(tmp_path / "streamed")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert streamed.passed and streamed.max_deviation == pytest.approx(memory.max_deviation, rel=1e-6)


def test_bf16_without_noise_is_exact_and_with_noise_within_the_rounding(tmp_path: Path):
    """Clone ×2 divides by 2, exact in bf16: only the rounding of the noisy copies deviates."""
    src = tmp_path / "src"
    tiny_model("llama", tied=False).to(torch.bfloat16).save_pretrained(src)
    with pytest.warns(UserWarning, match="noise is off"):
        exact = grow_streaming(src, tmp_path / "exact", hidden_size=64, num_layers=4, noise_db=None)
    noisy = grow_streaming(src, tmp_path / "noisy", hidden_size=64, num_layers=4)
    assert exact.max_deviation < 1e-5
    assert 1e-4 < noisy.max_deviation < noisy.tolerance == 2.0**-5


def test_shard_writer_round_trips(tmp_path: Path):
    tensors = {
        "a": torch.randn(3, 5),
        "b": torch.randn(7).to(torch.bfloat16),
        "empty": torch.zeros(0, 4),
        "ids": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "scalar": torch.tensor(2.5),
    }
    writer = ShardWriter(tmp_path, max_shard_bytes=64)
    for key, x in tensors.items():
        writer.add(key, x)
    names = writer.finish()
    assert names == [
        "model-00001-of-00003.safetensors",
        "model-00002-of-00003.safetensors",
        "model-00003-of-00003.safetensors",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names, "model.safetensors.index.json"])
    loaded = {k: v for name in names for k, v in load_file(tmp_path / name).items()}  # the reference reader
    read = FolderTensors(tmp_path)
    for key, x in tensors.items():
        assert torch.equal(loaded[key], x) and torch.equal(read[key], x) and read[key].dtype == x.dtype
    save_file({"w": torch.ones(2, dtype=torch.bfloat16)}, tmp_path / "model.safetensors")
    assert FolderTensors(tmp_path, upcast=True)["w"].dtype == torch.float32  # the single file wins over an index


def test_cli_stream_and_its_refusals(tmp_path: Path, save_tiny, kinherit_main, capsys):
    src = save_tiny("llama")
    assert kinherit_main(["grow", str(src), str(tmp_path / "out"), "--stream", "--hidden-size", "64"]) == 0
    assert "streamed" in capsys.readouterr().out
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert kinherit_main(["grow", str(src), str(tmp_path / "out"), "--stream", "--hidden-size", "64"]) == 2
    assert "is not empty" in capsys.readouterr().err
    with pytest.raises(KinheritError, match="dense models only"):
        grow_streaming(src, tmp_path / "moe", num_experts=4)
    with pytest.raises(KinheritError, match="largest shard must be positive"):
        grow_streaming(src, tmp_path / "zero", hidden_size=64, max_shard_bytes=0)
    assert not (tmp_path / "moe").exists() and not (tmp_path / "zero").exists()


@pytest.mark.slow  # three Python processes (~20 s of CPU); the streaming path itself is tested above
def test_the_memory_bench_runs_at_tiny_size(tmp_path: Path):
    """`python -m bench.grow_stream` (the README's ≥ 4 GB measurement) at a tiny size: it builds, grows, measures,
    cleans up."""
    import os
    import subprocess
    import sys

    root = Path(__file__).parent.parent.parent
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.grow_stream",
            "--hidden",
            "256",
            "--layers",
            "1",
            "--target-layers",
            "2",
            "--vocab",
            "500",
            "--dir",
            str(tmp_path),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "peak RSS" in done.stdout and "passed True" in done.stdout
    assert list(tmp_path.iterdir()) == []  # both folders deleted

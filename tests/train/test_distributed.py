"""The unchanged `kinherit pretrain` command under torchrun: 2 CPU processes, gloo DDP; a sharding request that
accelerate does not honour there is refused, not silently dropped."""

import json
import os
import socket
import subprocess
import sys

import pytest
import yaml

from kinherit.metrics.log import read_metrics


def test_two_process_ddp_run(tmp_path, tiny_run, torchrun_pretrain):
    torchrun_pretrain(tiny_run(tmp_path / "ddp", max_steps=4, eval_steps=4, save_steps=4, logging_steps=2))
    events = read_metrics(tmp_path / "ddp" / "metrics.jsonl")
    train = [e for e in events if "loss" in e]
    assert [e["step"] for e in train] == [2, 4]  # written once, by the main process
    assert train[-1]["tokens"] == 4 * 8 * 32 * 2  # steps × per-device batch × seq_len × world size
    assert (tmp_path / "ddp" / "checkpoints" / "checkpoint-4" / "rng_state_1.pth").is_file()
    assert (tmp_path / "ddp" / "model" / "model.safetensors").is_file()
    layout = json.loads((tmp_path / "ddp" / "run.json").read_text())["distributed"]
    assert layout == {"world_size": 2, "distributed_type": "MULTI_CPU", "requested": None, "teacher": None}


# 10 s under torchrun; the detection (check_distributed_request) is unit-tested in tests/train/test_preflight.py
@pytest.mark.slow
def test_fsdp_that_falls_back_to_ddp_is_refused(tmp_path, tiny_run):
    config = tiny_run(
        tmp_path / "fsdp", max_steps=2, eval_steps=2, save_steps=2, fsdp="full_shard", fsdp_config={"fsdp_version": 2}
    )
    (tmp_path / "fsdp.yaml").write_text(yaml.safe_dump(config))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(port),
        "-m",
        "kinherit.cli",
        "pretrain",
        "--config",
        str(tmp_path / "fsdp.yaml"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode != 0
    assert (
        "kinherit pretrain: error: train.fsdp asks for FSDP, but accelerate runs these 2 processes as MULTI_CPU"
        in proc.stderr
    )
    assert not (tmp_path / "fsdp" / "checkpoints").exists() or not any((tmp_path / "fsdp" / "checkpoints").iterdir())

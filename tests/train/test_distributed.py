"""The unchanged `kinherit pretrain` command under torchrun: 2 CPU processes, gloo DDP."""

import os
import subprocess
import sys

import yaml

from kinherit.train.metrics_log import read_metrics


def test_two_process_ddp_run(tmp_path, tiny_run):
    config = tiny_run(tmp_path / "ddp", max_steps=4, eval_steps=4, save_steps=4, logging_steps=2)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "kinherit.cli", "pretrain", "--config", str(tmp_path / "run.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = read_metrics(tmp_path / "ddp" / "metrics.jsonl")
    train = [e for e in events if "loss" in e]
    assert [e["step"] for e in train] == [2, 4]  # written once, by the main process
    assert train[-1]["tokens"] == 4 * 8 * 32 * 2  # steps × per-device batch × seq_len × world size
    assert (tmp_path / "ddp" / "checkpoints" / "checkpoint-4" / "rng_state_1.pth").is_file()
    assert (tmp_path / "ddp" / "model" / "model.safetensors").is_file()

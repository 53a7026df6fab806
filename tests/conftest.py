"""Shared fixtures: a small real corpus (a few stdlib packages) and tiny run configs built from it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from transformers import TrainerCallback

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DISABLE_TQDM", "1")

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SMALL_CORPUS = [str(STDLIB / "json"), str(STDLIB / "email"), str(STDLIB / "logging")]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one intra-op thread (no spin-waiting on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def torchrun_cli(args: list[str], module: str = "kinherit.cli", env: dict[str, str] | None = None) -> None:
    """Run `kinherit ARGS` (as `python -m module ARGS`) under `torchrun --nproc_per_node 2` (gloo on CPU); assert
    success."""
    with socket.socket() as sock:  # a free loopback port for the rendezvous
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
        module,
        *args,
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture()
def torchrun_pretrain(tmp_path: Path):  # noqa: ANN201
    """Run `kinherit pretrain` on a config dict under `torchrun --nproc_per_node 2` (gloo on CPU); assert success."""

    def run(config: dict[str, Any]) -> None:
        path = tmp_path / "torchrun.yaml"
        path.write_text(yaml.safe_dump(config))
        torchrun_cli(["pretrain", "--config", str(path)])

    return run


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One corpus cache for the whole session, so each tiny corpus is tokenized once."""
    return tmp_path_factory.mktemp("kinherit-cache")


@pytest.fixture()
def tiny_run(cache_dir: Path):  # noqa: ANN201
    """Factory of config dicts for seconds-long runs on SMALL_CORPUS."""
    return lambda out, family="llama", **train: _tiny_run(Path(out), cache_dir, family, **train)


def _tiny_run(out: Path, cache: Path, family: str, **train: Any) -> dict[str, Any]:
    return {
        "out": str(out),
        "data": {
            "sources": SMALL_CORPUS,
            "tokenizer": {"train_vocab_size": 512},
            "seq_len": 32,
            "val_fraction": 0.05,
            "cache_dir": str(cache),
        },
        "model": {"family": family, "hidden_size": 32, "num_layers": 2, "num_heads": 4, "intermediate_size": 64},
        "train": {
            "max_steps": 8,
            "per_device_train_batch_size": 8,
            "per_device_eval_batch_size": 32,
            "learning_rate": 3e-3,
            "eval_steps": 4,
            "logging_steps": 1,
            "save_steps": 4,
            "disable_tqdm": True,
            "seed": 0,
            **train,
        },
    }


class CrashAt(TrainerCallback):
    """Simulates a killed run: raises once training reaches `step`."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
        if state.global_step == self.step:
            raise RuntimeError("simulated crash")

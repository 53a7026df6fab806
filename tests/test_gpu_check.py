"""`python -m bench.gpu_check --tiny`: the GPU check's CPU run at tiny sizes, so it cannot rot before a GPU runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_gpu_check_runs_on_the_cpu(tmp_path: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--tiny", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert float(re.search(r"ratio kinherit / transformers\.Trainer: ([\d.]+)", out).group(1)) > 0
    assert re.search(r"\[2\] MFU: [\d.]+% of [\d.e+-]+ TFLOP/s \(CPU: measured fp32 matmul rate\)", out)
    for run in ("self-learning", "online KI", "cached KI top-4"):
        assert re.search(rf"{run} \|\s+[\d.]+ \|\s+[\d.]+ \|\s+[\d.]+", out), run
    predicted = float(re.search(r"online KI overhead [+-][\d.]+% vs predicted \+([\d.]+)%", out).group(1))
    assert predicted > 0
    assert "16 bytes/token" in out  # top-4: fp16 log-probs + uint16 ids
    assert "[5] peak GPU memory: no GPU (CPU run)" in out
    assert "fp32: within the exact tolerance 1e-4: True" in out
    growths = re.findall(r"growth (\d) at step \d+: held-loss change ([+-][\d.e+-]+)", out)
    assert [g for g, _ in growths] == ["1", "2", "3"] and all(abs(float(c)) <= 1e-4 for _, c in growths)
    assert len(re.findall(r"^\s+\d \|\s+\d+ \|\s+-$", out, flags=re.M)) == 4  # tokens/s of each stage

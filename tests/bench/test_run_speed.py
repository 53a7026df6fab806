"""bench/run_speed.py: whole runs with every validation block against the default cap, alternating."""

from __future__ import annotations

from bench import run_speed as bench
from tests.conftest import SMALL_CORPUS


def test_both_variants_run_and_the_table_gives_their_medians_and_ratio(tmp_path, monkeypatch):
    monkeypatch.setenv("KINHERIT_CACHE", str(tmp_path / "cache"))
    bench.main(["--corpus", *SMALL_CORPUS, "--size", "16x1", "--vocab", "512", "--steps", "2", "--repeats", "1",
                "--out", str(tmp_path)])  # fmt: skip
    table = (tmp_path / "run_speed.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| every") or line.startswith("| data.max_val_tokens")]
    assert len(rows) == 2 and all(float(row.split("|")[2].split()[0]) > 0 for row in rows)
    assert table[-1].startswith("ratio of the medians: ") and not (tmp_path / "run").exists()

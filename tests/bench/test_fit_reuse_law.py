"""bench/fit_reuse_law.py: on where_users_train.json files of a known law (synthetic, the bench's own structure) the
fit recovers its coefficients, the held-out settings fall in their intervals, and the written law predicts through
kinherit.plan; transcribed points enter only for methods the bench does not measure."""

from __future__ import annotations

import json
import math
import random

import pytest

from bench import fit_reuse_law
from kinherit.plan.law import load_law

TAUS = ["5", "10", "20", "40"]


def true_saving(n: float, tau: float) -> float:
    return 0.3 + 0.1 * math.log10(tau / 10) - 0.05 * math.log10(n / 1e5)


def synthetic(n: int, rng: random.Random, seeds: int = 3) -> dict:
    """A where_users_train.json at target size `n`: method `depth@0.8` saving `true_saving` + noise and Δ loss
    −0.1 + noise; the target's own placement on the frontier 10% behind it (saving 1 − 1/1.1... = 9.1%)."""
    step_tokens = 1000

    def interval(value: float) -> dict:
        return {"low": value, "high": value, "bound": None}

    runs, placed = [], []
    for _ in range(seeds):
        run, place = {"32x4": {}, "depth@0.8": {}}, {"32x4": {}, "depth@0.8": {}}
        for tau in TAUS:
            loss = 4.0 - 0.1 * math.log10(float(tau))
            run["32x4"][tau] = {"flops": 1.0, "loss": loss}
            run["depth@0.8"][tau] = {"flops": 1.0, "loss": loss - 0.1 + rng.gauss(0, 0.01)}
            place["32x4"][tau] = {
                "vs_target": interval(0.0),
                "vs_frontier": interval(-0.1),
                "delta_vs_frontier": 0.05,
                "sizes_spanning": 1,
            }
            saving = true_saving(n, float(tau)) + rng.gauss(0, 0.02)
            place["depth@0.8"][tau] = {"vs_target": interval(saving), "vs_frontier": interval(saving),
                                       "delta_vs_frontier": -0.1}  # fmt: skip
        runs.append(run)
        placed.append(place)
    return {
        "args": {"methods": ["scratch", "depth@0.8"], "scheduler": "wsd", "corpus": None},
        "target": "32x4",
        "sizes": ["24x4", "32x4"],
        "params": {"non_embedding": n},
        "taus": TAUS,
        "curve_taus": TAUS,
        "tokens_per_step": step_tokens,
        "plan": {tau: {"steps": round(float(tau) * n / step_tokens)} for tau in TAUS},
        "runs": runs,
        "placed": placed,
    }


def test_the_fit_recovers_a_known_law_and_passes_its_held_out_check(tmp_path):
    rng = random.Random(0)
    sources = []
    for n in (100_000, 400_000, 1_600_000):
        path = tmp_path / f"n{n}" / "where_users_train.json"
        path.parent.mkdir()
        path.write_text(json.dumps(synthetic(n, rng)))
        sources.append(str(path.parent))
    out, table = tmp_path / "law.json", tmp_path / "held_out.md"
    held = tmp_path / "held_out_only.md"
    fit_reuse_law.main(["--from", *sources, "--points", "", "--out", str(out), "--table", str(table),
                        "--held-out-table", str(held)])  # fmt: skip
    law = json.loads(out.read_text())
    saving = law["methods"]["depth@0.8"]["saving"]
    assert saving["columns"] == ["tau", "n"] and saving["settings"] == 12 and saving["points"] == 36
    # coef at the centre: b0 = true_saving at the centre, slopes 0.1 per decade of τ and −0.05 per decade of N
    assert saving["coef"][1] == pytest.approx(0.1, abs=0.03) and saving["coef"][2] == pytest.approx(-0.05, abs=0.03)
    checks = [row for row in law["held_out"] if row["method"] == "depth@0.8"]
    assert len(checks) == 4 and all(row["inside"] for row in checks)  # 2 settings × (saving, Δ loss)
    assert "| depth@0.8 | saving |" in table.read_text()
    assert table.read_text().endswith(held.read_text()) and held.read_text().count("| depth@0.8 |") == 4
    frontier = law["methods"]["frontier"]  # the target 10% behind the frontier: the frontier saves 1 − 1/1.1
    assert frontier["saving"]["coef"][0] == pytest.approx(1 - 1 / 1.1) and frontier["loss_delta"]["coef"][
        0
    ] == pytest.approx(-0.05)
    predicted = load_law(out).get("depth@0.8").saving.predict({"n": 2e5, "tau": 15.0})
    assert predicted[0] < true_saving(2e5, 15.0) < predicted[2]


def test_transcribed_points_fill_only_the_methods_the_bench_does_not_measure(tmp_path):
    points = {
        "points": [
            {"method": "depth@0.8", "n": 1e5, "tau": 1.0, "source": "t", "corpus": "c", "protocol": "p",
             "saving": {"seeds": [0.9, 0.9]}},
            {"method": "ki", "n": 1e5, "tau": 1.0, "base_tau": 10.0, "source": "t", "corpus": "c", "protocol": "p",
             "saving": {"mean": 0.2, "std": 0.1, "n": 3}, "loss_delta": {"mean": -0.1, "std": 0.01, "n": 3}},
        ]
    }  # fmt: skip
    (tmp_path / "points.json").write_text(json.dumps(points))
    path = tmp_path / "where_users_train.json"
    path.write_text(json.dumps(synthetic(100_000, random.Random(1))))
    law = fit_reuse_law.build([str(path)], tmp_path / "points.json", "python -m bench.fit_reuse_law")
    assert law["methods"]["depth@0.8"]["sources"] == [str(path)]  # the bench's, not the transcribed 0.9
    ki = law["methods"]["ki"]["saving"]  # mean ± std over 3 seeds entered as 3 values with that mean and std
    assert ki["coef"] == [pytest.approx(0.2)] and ki["residual_var"] == pytest.approx(0.01)
    assert ki["range"]["base_tau"] == [10.0, 10.0]


def test_a_grow_method_enters_the_law_as_grow_at_its_sources_tokens_per_parameter(tmp_path):
    result = synthetic(100_000, random.Random(2))
    for key in ("runs", "placed"):
        for seed in result[key]:
            seed["grow:16x4"] = seed.pop("depth@0.8")
    result["args"] = {**result["args"], "methods": ["scratch", "grow:16x4"], "data": {"tokenizer":
                      {"train_vocab_size": 2048}, "seq_len": 128}}  # fmt: skip
    result["sources"] = {"16x4": {"steps": 321}}
    path = tmp_path / "where_users_train.json"
    path.write_text(json.dumps(result))
    law = fit_reuse_law.build([str(path)], None, "python -m bench.fit_reuse_law")
    # 16x4's non-embedding parameters: 4 layers × (4·16² attention + 3·16·64 MLP + 2·16 norms) + 16 (final norm)
    n_source = 4 * (4 * 16**2 + 3 * 16 * 64 + 2 * 16) + 16
    assert set(law["methods"]) == {"grow", "frontier"}
    assert law["methods"]["grow"]["saving"]["range"]["base_tau"] == [321 * 1000 / n_source] * 2


def test_a_bench_of_one_size_measures_no_frontier(tmp_path):
    result = {**synthetic(100_000, random.Random(3)), "sizes": ["32x4"]}  # the target alone: its own "frontier"
    path = tmp_path / "where_users_train.json"
    path.write_text(json.dumps(result))
    assert set(fit_reuse_law.build([str(path)], None, "python -m bench.fit_reuse_law")["methods"]) == {"depth@0.8"}


def test_the_shipped_points_name_their_table():
    points = json.loads(fit_reuse_law.POINTS.read_text())["points"]
    assert all(p["source"].startswith("docs/results/") and p["corpus"] and p["protocol"] for p in points)

"""bench/where_users_train.py and the protocol's frontier: the frontier, savings and their bounds on synthetic
curves (hand-computed), the corpus tool's refusal, and one tiny end-to-end run of the bench."""

from __future__ import annotations

import json
import math

import pytest

from bench import corpus, fit_reuse_law
from bench import where_users_train as bench
from bench.protocol import against_frontier, compute_to_loss, frontier, frontier_compute, frontier_loss, loss_at

# Two sizes' annealed curves (C, L): the small one is better at low compute, the large one at high compute.
SMALL = [(1e12, 4.0), (1e13, 3.6), (1e14, 3.4)]
LARGE = [(1e12, 4.4), (1e13, 3.6), (1e14, 3.0)]
CURVES = {"small": SMALL, "large": LARGE}


def test_a_curve_is_linear_in_log_compute_and_never_extrapolated():
    assert loss_at(SMALL, math.sqrt(1e12 * 1e13)) == pytest.approx(3.8)  # halfway in log C
    assert loss_at(SMALL, 1e11) is None and loss_at(SMALL, 1e15) is None


def test_the_frontier_is_the_min_over_sizes_at_every_compute():
    for c in (1e12, 3e12, 1e13, 5e13, 1e14):
        assert frontier_loss(CURVES, c)[0] == min(loss_at(SMALL, c), loss_at(LARGE, c))
    assert frontier_loss(CURVES, 3e13)[1:] == ("large", 2)
    # the envelope: every budget, and where the segments cross (they touch at 1e13: no crossing inside a segment)
    assert [(c, loss, size) for c, loss, size in frontier(CURVES)] == [
        (pytest.approx(1e12), 4.0, "small"),
        (pytest.approx(1e13), 3.6, "large"),
        (pytest.approx(1e14), 3.0, "large"),
    ]
    crossing = frontier({"a": [(1.0, 2.0), (100.0, 1.0)], "b": [(1.0, 1.5), (100.0, 1.5)]})
    assert [round(c, 6) for c, _, _ in crossing] == [1.0, 10.0, 100.0]  # a crosses b halfway in log C
    assert [size for _, _, size in crossing] == ["b", "a", "a"]


def test_a_saving_from_synthetic_curves_equals_the_hand_computed_value():
    # a run of 2e12 FLOPs ending at 3.6: the large target needs 1e13 for 3.6 (saving 80%); so does the frontier
    # (small reaches 3.6 at 1e13 too); at 2e12 the frontier is small's 4.0 − 0.4·log10(2) (Δ = 3.6 − that)
    placed = against_frontier(2e12, 3.6, LARGE, CURVES)
    assert placed["vs_target"] == {"low": pytest.approx(0.8), "high": pytest.approx(0.8), "bound": None}
    assert placed["vs_frontier"]["low"] == pytest.approx(0.8) and placed["vs_frontier"]["bound"] is None
    assert placed["delta_vs_frontier"] == pytest.approx(3.6 - (4.0 - 0.4 * math.log10(2)))
    # at 3.3, the large target: halfway between 1e13 and 1e14 in log C → √1e27; small never gets there
    c = math.sqrt(1e13 * 1e14)
    assert compute_to_loss(LARGE, 3.3) == (pytest.approx(c), pytest.approx(c))
    assert frontier_compute(CURVES, 3.3) == (pytest.approx(c), pytest.approx(c))  # small: [1e14, ∞) is above it


def test_a_loss_outside_the_measured_range_gives_a_flagged_bound():
    below = against_frontier(1e13, 2.9, LARGE, CURVES)  # no scratch budget reaches 2.9: C_s > 1e14
    assert below["vs_target"] == {"low": pytest.approx(0.9), "high": 1.0, "bound": "lower"}
    above = against_frontier(1e13, 4.5, LARGE, CURVES)  # every budget ends below 4.5: C_s < 1e12
    assert above["vs_target"] == {"low": -math.inf, "high": pytest.approx(-9.0), "bound": "upper"}
    # a never reaches 2.2 within its budgets (C ≥ 10), b does at 10^1.8: the frontier needs between 10 and 10^1.8
    apart = {"a": [(1.0, 3.0), (10.0, 2.5)], "b": [(1.0, 4.0), (100.0, 2.0)]}
    assert frontier_compute(apart, 2.2) == (pytest.approx(10.0), pytest.approx(10**1.8))
    ranged = against_frontier(5.0, 2.2, apart["b"], apart)["vs_frontier"]
    assert ranged == {"low": pytest.approx(0.5), "high": pytest.approx(1 - 5 / 10**1.8), "bound": "range"}
    assert against_frontier(1e15, 3.0, LARGE, CURVES)["delta_vs_frontier"] is None  # C_m beyond every budget
    cell = bench.format_saving(bench.summarize([below, below], 1e13)["vs_target"])
    assert cell == "≥ 90.0% (2 of 2 seeds outside the measured losses)"


def test_the_corpus_tool_names_what_is_missing_and_how_to_install_it(monkeypatch, tmp_path, capsys):
    absent = corpus.Part("nothing", "dict-nothing", str(tmp_path / "absent"), "*.txt")
    (tmp_path / "there").mkdir()
    (tmp_path / "there" / "a.txt").write_text("an entry\n")
    monkeypatch.setattr(corpus, "PARTS", [absent, corpus.Part("there", "pkg", str(tmp_path / "there"), "*.txt")])
    assert corpus.main(["--out", str(tmp_path / "out")]) == 2
    assert "install with: apt-get install -y dict-nothing" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert corpus.write(tmp_path / "c", corpus.PARTS[1:]) == {"there": 10}
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["there.txt"]
    assert (tmp_path / "c" / "there.txt").read_text() == "an entry\n\n"


def test_the_bench_runs_end_to_end_at_tiny_size(monkeypatch, tmp_path, cache_dir):
    text = tmp_path / "corpus.txt"
    text.write_text("".join(f"entry {i}: the {i % 7} words of line {i * 13 % 101} end here.\n" for i in range(6000)))
    data = {
        "sources": [str(text)],
        "tokenizer": {"train_vocab_size": 300},
        "seq_len": 32,
        "val_fraction": 0.05,
        "cache_dir": str(cache_dir),
    }
    monkeypatch.setattr(bench, "corpus_data", lambda path: {**data, "sources": [path]})
    out = tmp_path / "out"
    bench.main([
        "--target", "16x4", "--frontier", "16x2", "32x2", "--methods", "scratch", "depth",
        "--tokens-per-param", "0.1", "--curve-tokens-per-param", "0.2", "--lr-grid", "1e-2",
        "--max-extensions", "0", "--tune-at", "0.1", "--seeds", "1", "--batch", "4", "--corpus", str(text),
        "--out", str(out),
    ])  # fmt: skip
    result = json.loads((out / "where_users_train.json").read_text())
    assert result["sizes"] == ["16x2", "32x2", "16x4"] and result["curve_taus"] == ["0.1", "0.2"]
    plan = result["plan"]["0.1"]
    assert plan["steps"] == round(0.1 * 16_528 / 128)  # τ·N / tokens per step, N of 16x4 (4·4128 + 16)
    runs = result["runs"][0]
    assert set(runs["16x2"]) == {"0.1", "0.2"} and set(runs["depth"]) == {"0.1"}
    for size in result["sizes"]:  # each size spent the target's scratch FLOPs at τ, to within one of its steps
        assert runs[size]["0.1"]["flops"] == pytest.approx(runs["16x4"]["0.1"]["flops"], rel=0.2)
    assert runs["depth"]["0.1"]["flops"] < runs["16x4"]["0.1"]["flops"]  # its small stages are counted as such
    placed = result["placed"][0]["16x4"]["0.1"]
    assert placed["vs_target"]["low"] == pytest.approx(0.0, abs=1e-9)  # scratch is on its own curve
    curves = {s: [(p["flops"], p["loss"]) for p in runs[s].values()] for s in result["sizes"]}
    depth = runs["depth"]["0.1"]
    assert result["placed"][0]["depth"]["0.1"] == against_frontier(
        depth["flops"], depth["loss"], curves["16x4"], curves
    )
    table = (out / "where_users_train.md").read_text()
    assert "at τ = 0.1 only and reused at every τ" in table and "| depth |" in table and "| scratch 32x2 |" in table
    assert (out / "where_users_train.png").stat().st_size > 0
    law = fit_reuse_law.build([str(out)], None, "python -m bench.fit_reuse_law")  # the law's fitter reads it
    assert set(law["methods"]) == {"depth", "frontier"} and law["methods"]["depth"]["saving"]["points"] == 1
    assert law["methods"]["depth"]["saving"]["residual_var"] is None  # one seed: no interval

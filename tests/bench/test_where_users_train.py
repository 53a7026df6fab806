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


def _tiny_corpus(monkeypatch, tmp_path, cache_dir):  # noqa: ANN202
    """The end-to-end tests' corpus: a text file of 6000 short lines, tokenized once per session."""
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
    return text


def test_the_bench_runs_end_to_end_at_tiny_size(monkeypatch, tmp_path, cache_dir):
    text, out = _tiny_corpus(monkeypatch, tmp_path, cache_dir), tmp_path / "out"
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


def test_the_saving_reaches_zero_where_it_changes_sign_linear_in_log_tau():
    falling = bench.zero_crossing({5.0: 0.3, 10.0: 0.1, 20.0: -0.1, 40.0: -0.3})
    assert falling["tau"] == pytest.approx(math.sqrt(10 * 20)) and falling["between"] == [10.0, 20.0]
    assert falling["direction"] == "falls"
    # a quarter of the way from 0.4 to −1.2 in log τ: 5 · 2^(1/4)
    assert bench.zero_crossing({10.0: -1.2, 5.0: 0.4})["tau"] == pytest.approx(5 * 2**0.25)
    assert bench.zero_crossing({5.0: -0.2, 10.0: 0.2})["direction"] == "rises"
    assert bench.zero_crossing({5.0: 0.2, 10.0: 0.0})["tau"] == 10.0  # zero at a measured τ: that τ
    above, below = bench.zero_crossing({5.0: 0.2, 40.0: 0.1}), bench.zero_crossing({5.0: -0.2, 40.0: -0.1})
    assert (above["tau"], above["beyond"], below["beyond"]) == (None, "above", "below")
    assert bench.format_crossing("grow:16x4", {**falling, "bounded": False}) == (
        "grow:16x4 at τ ≈ 14.1 (between 10 and 20, falling)"
    )
    assert bench.format_crossing("ki:16x4", {**above, "bounded": False}) == "ki:16x4 > max τ measured (40)"
    assert bench.format_crossing("ki:16x4", {**below, "bounded": True}) == (
        "ki:16x4 < min τ measured (5) (a seed's bound used)"
    )


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("copy:16x4", "unknown method 'copy:16x4'"),
        ("grow:16", "write grow:HxL"),
        ("grow:24x4", "not a multiple of the heads' 16"),  # width growth keeps head_dim 16
        ("ki:64x4", "the source 64x4 is not smaller than the target 32x4"),
        ("grow:16x8", "the source 16x8 is not smaller"),
        ("depth+bogus", "unknown option +bogus"),
        ("deep", "unknown schedule 'deep'"),
    ],
)
def test_a_bad_method_is_one_line_and_exit_2_before_any_training(tmp_path, capsys, method, message):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--target", "32x4", "--methods", "scratch", method, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()  # nothing trained


def test_grow_and_ki_reuse_an_existing_model_placed_sunk_and_with_all_compute(monkeypatch, tmp_path, cache_dir):
    import torch
    from transformers import AutoModelForCausalLM

    text, out = _tiny_corpus(monkeypatch, tmp_path, cache_dir), tmp_path / "out"
    bench.main([
        "--target", "32x2", "--frontier", "32x2", "--methods", "scratch", "grow:16x1", "ki:16x1",
        "--tokens-per-param", "0.05", "--curve-tokens-per-param", "0.1", "--lr-grid", "1e-2", "--max-extensions", "0",
        "--tune-at", "0.05", "--seeds", "1", "--batch", "4", "--source-tokens-per-param", "0.1",
        "--corpus", str(text), "--out", str(out),
    ])  # fmt: skip
    result = json.loads((out / "where_users_train.json").read_text())
    source = result["sources"]["16x1"]
    assert source["steps"] == round(0.1 * 32_928 / 128)  # τ_s of the target's N (2·16448 + 32), seed 1000
    assert source["grown"]["passed"] and source["grown"]["max_deviation"] <= 1e-4
    # the grown start computes the source's function: logits of both folders on the same tokens
    small = AutoModelForCausalLM.from_pretrained(out / "sources" / "16x1" / "model")
    grown = AutoModelForCausalLM.from_pretrained(out / "sources" / "16x1-grown-32x2")
    assert (grown.config.hidden_size, grown.config.num_hidden_layers, grown.config.num_attention_heads) == (32, 2, 2)
    ids = torch.randint(0, small.config.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (small(ids).logits - grown(ids).logits).abs().max() <= 1e-4
    runs, placed = result["runs"][0], result["placed"][0]
    scratch, grow, ki = runs["32x2"]["0.05"], runs["grow:16x1"]["0.05"], runs["ki:16x1"]["0.05"]
    assert grow["flops"] == pytest.approx(scratch["flops"], rel=1e-12)  # the target's S(τ) steps
    assert ki["flops"] > scratch["flops"]  # the teacher's forward passes are counted
    for name, run in (("grow:16x1", grow), ("ki:16x1", ki)):  # the source's training, through the run's lineage
        assert run["source_flops"] == source["flops"]
        assert placed[name + " (all compute)"]["0.05"]["flops"] == run["flops"] + source["flops"]
        assert placed[name]["0.05"]["flops"] == run["flops"]
        assert (out / "tau0.05" / "seed1" / name / "model").is_dir()  # ':' in a run folder's name is fine
    crossing = result["zero_crossing"]["grow:16x1 (all compute)"]
    assert crossing["beyond"] in ("above", "below") and crossing["tau"] is None  # one τ: no sign change measured
    table = (out / "where_users_train.md").read_text()
    assert "| ki:16x1 (all compute) |" in table and "Existing model 16x1 (seed 1000): 26 steps" in table
    assert "Staged methods count every stage (all compute" in table

"""bench.protocol's pure steps on real numbers: the LR tuner (a cheap fake objective), mean ± std, savings and their
bounds, parameter counts against a hand count, budgets in tokens per parameter."""

from __future__ import annotations

import math
import statistics

import pytest
import transformers

from bench.protocol import (
    budget_line,
    budget_steps,
    compare,
    format_summary,
    mean_std,
    model_at,
    model_param_counts,
    non_embedding_params,
    param_counts,
    tokens_per_param,
    tokens_per_step,
    tune_lr,
)
from kinherit.errors import KinheritError


def _bowl(optimum: float):  # noqa: ANN202
    """A final loss that is lowest at `optimum`, quadratic in log2 LR."""
    return lambda lr: 3.0 + (math.log2(lr) - math.log2(optimum)) ** 2


def test_the_tuner_extends_the_grid_at_an_edge_until_the_best_is_interior():
    calls = []
    losses = {"high": _bowl(16.0), "low": _bowl(0.25), "mid": _bowl(2.0)}

    def evaluate(lr: float) -> dict[str, float]:
        calls.append(lr)
        return {name: loss(lr) for name, loss in losses.items()}

    tuned = tune_lr(["high", "low", "mid"], [4.0, 1.0, 2.0], evaluate)
    # high: 4 is the top edge → 8 → 16 → 32 (16 interior); low: 1 is the bottom edge → 0.5 → 0.25 → 0.125
    assert tuned["best"] == {"high": 16.0, "low": 0.25, "mid": 2.0}
    assert tuned["grid"] == [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert tuned["interior"] and all(tuned["interior_by_run"].values())
    assert sorted(calls) == tuned["grid"]  # every LR trained once, for every run together
    assert tuned["configs_tried"] == {"high": 9, "low": 9, "mid": 9}
    assert tuned["mean_final_loss"]["mid"]["2"] == 3.0 and tuned["mean_final_loss"]["high"]["4"] == 7.0


def test_the_tuner_stops_after_its_extensions_and_says_the_best_is_on_the_edge():
    tuned = tune_lr(["a"], [1.0, 2.0], lambda lr: {"a": _bowl(1024.0)(lr)}, max_extensions=2)
    assert tuned["grid"] == [1.0, 2.0, 4.0, 8.0] and tuned["best"] == {"a": 8.0}
    assert not tuned["interior"] and tuned["interior_by_run"] == {"a": False} and tuned["configs_tried"] == {"a": 4}
    fixed = tune_lr(["a", "b"], [1.0, 2.0, 4.0], lambda lr: {"a": _bowl(2.0)(lr), "b": _bowl(8.0)(lr)}, 0)
    assert fixed["grid"] == [1.0, 2.0, 4.0] and fixed["interior_by_run"] == {"a": True, "b": False}


def test_mean_std_is_over_the_values_that_exist():
    summary = mean_std([1.0, 2.0, None, 4.0, float("nan")])
    assert summary["mean"] == pytest.approx(7 / 3) and summary["std"] == pytest.approx(statistics.stdev([1, 2, 4]))
    assert (summary["reached"], summary["n"]) == (3, 5)
    assert format_summary(summary, pct=False) == "2.333 ± 1.528 (mean of 3; 2 of 5 undefined)"
    assert mean_std([None]) == {"mean": None, "std": 0.0, "reached": 0, "n": 1}
    assert format_summary(mean_std([5.25]), pct=False, digits=4) == "5.2500"


def _evals(losses: list[float]) -> list[dict]:
    """Evaluations every 10 steps from step 0, 10 FLOPs per 10 steps."""
    return [{"step": 10 * i, "flops": 10.0 * i, "val_loss": loss} for i, loss in enumerate(losses)]


def test_compare_gives_a_bound_where_the_target_is_not_reached():
    scratch = _evals([6.0, 5.0, 4.0, 3.0, 2.0])  # budget 20 steps: targets 4.0 (1×) and 2.0 (2×)
    fast = compare(scratch, _evals([6.0, 4.0, 3.0, 2.5, 2.0]), budget=20, horizons=[1, 2])
    assert fast["saving"] == {"1x": pytest.approx(0.5), "2x": pytest.approx(0.0)}
    assert fast["reached"] == {"1x": True, "2x": True} and fast["loss"] == {"1x": 3.0, "2x": 2.0}
    slow = compare(scratch, _evals([6.0, 5.5, 5.0, 4.5, 4.2]), budget=20, horizons=[1, 2], sunk=5.0, at="step")
    # never reached: the bound 1 − F_run(last) / F_scratch(target) = 1 − 40/20 at 1×, 1 − 40/40 at 2×
    assert slow["saving"] == {"1x": pytest.approx(-1.0), "2x": pytest.approx(0.0)}
    assert slow["reached"] == {"1x": False, "2x": False} and slow["saving_sunk_counted"] == {"1x": None, "2x": None}
    assert (slow["evaluations"], slow["not_worse"], slow["sunk_flops"]) == (4, 0, 5.0)
    assert slow["max_excess"] == pytest.approx(2.2)  # 4.2 − 2.0 at step 40
    assert fast["not_worse_at_equal_flops"] == 4 and fast["saving_sunk_counted"]["1x"] == pytest.approx(0.5)
    flat = _evals([5.0, 5.0, 5.0])
    with pytest.raises(KinheritError, match="never improved"):
        compare(flat, flat, budget=10, horizons=[1])


def test_parameter_counts_of_a_tiny_llama_match_a_hand_count():
    sizes = {
        "family": "llama",
        "hidden_size": 32,
        "num_layers": 2,
        "num_heads": 4,
        "num_kv_heads": 2,
        "intermediate_size": 64,
    }
    # per layer: q, o 32·32 each; k, v 32·16 each (2 kv heads of 8); gate, up, down 32·64 each; 2 RMSNorms of 32
    layer = 2 * 32 * 32 + 2 * 32 * 16 + 3 * 32 * 64 + 2 * 32
    assert model_param_counts(sizes, vocab=97) == {
        "non_embedding": 2 * layer + 32,
        "with_embedding": 2 * layer + 32 + 97 * 32,
    }  # final norm; the tied head is the embedding
    untied = model_param_counts({**sizes, "tie_word_embeddings": False}, vocab=97)
    assert untied == {"non_embedding": 2 * layer + 32, "with_embedding": 2 * layer + 32 + 2 * 97 * 32}
    assert non_embedding_params(64, 4) == model_param_counts(model_at(64, 4))["non_embedding"] == 262_720


def test_parameter_counts_of_a_saved_model_folder(tmp_path):
    config = transformers.LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=50,
        max_position_embeddings=16,
    )
    model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(tmp_path)
    counts = model_param_counts(tmp_path)
    assert counts == param_counts(model) and counts["with_embedding"] == sum(p.numel() for p in model.parameters())
    assert counts["non_embedding"] == 4 * 32 * 32 + 3 * 32 * 64 + 2 * 32 + 32


def test_a_budget_is_steps_or_tokens_per_non_embedding_parameter():
    assert tokens_per_step() == 32 * 128  # the library's batch and seq_len
    train = {"per_device_train_batch_size": 16, "gradient_accumulation_steps": 2}
    assert tokens_per_step(train, {"seq_len": 64}) == 2048
    assert budget_steps(262_720, 2048, steps=200) == 200
    assert budget_steps(262_720, 2048, tokens_per_param=20) == 2566  # 20 · 262,720 / 2048 = 2565.6
    assert budget_steps(262_720, 2048, tokens_per_param=20, multiple_of=4) == 2564
    assert budget_steps(100, 2048, tokens_per_param=1, multiple_of=4) == 4  # never below one multiple
    with pytest.raises(ValueError, match="not both or neither"):
        budget_steps(100, 2048, steps=10, tokens_per_param=20)
    counts = {"non_embedding": 262_720, "with_embedding": 393_792}
    assert tokens_per_param(200, 2048, counts) == {
        "non_embedding": pytest.approx(1.559, abs=1e-3),
        "with_embedding": pytest.approx(1.040, abs=1e-3),
    }
    assert budget_line(200, 2048, counts) == (
        "B = 200 steps × 2,048 tokens = 409,600 tokens: 1.56 tokens per "
        "non-embedding parameter (262,720), 1.04 with embeddings (393,792)"
    )

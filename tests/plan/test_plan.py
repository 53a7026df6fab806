"""kinherit.plan: rows for every shipped pretrain config and for `--have` folders, their FLOPs, the recommendation,
the written config, and the one-line refusals (exit 2) of bad input, from Python and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from transformers import GPT2Config, LlamaConfig

from kinherit.cli import main
from kinherit.config import load_config
from kinherit.errors import KinheritError
from kinherit.plan import plan
from kinherit.plan.have import trained_tokens
from kinherit.plan.recipes import cost

CONFIGS = Path(__file__).parents[2] / "configs"
PRETRAIN_CONFIGS = ["small.yaml", "staged.yaml", "ki.yaml", "bert-mlm.yaml"]


def _have(root: Path, config, tokens: int | None = 1_638_400) -> str:  # noqa: ANN001
    """An HF folder `root/model` (config.json only: plan never loads weights) and its run's metrics.jsonl."""
    config.save_pretrained(root / "model")
    if tokens is not None:
        (root / "metrics.jsonl").write_text(json.dumps({"step": 400, "tokens": tokens, "loss": 4.0}) + "\n")
    return str(root / "model")


def _llama(vocab: int = 4096, layers: int = 2) -> LlamaConfig:
    return LlamaConfig(hidden_size=128, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=344,
                       vocab_size=vocab, architectures=["LlamaForCausalLM"])  # fmt: skip


@pytest.mark.parametrize("name", PRETRAIN_CONFIGS)
def test_every_shipped_pretrain_config_gets_a_plan(name):
    result = plan(CONFIGS / name)
    names = [row.recipe.name for row in result.rows]
    assert "scratch (configured)" in names and "scratch at the compute-optimal size" in names
    assert result.why and all(row.recipe.flops > 0 for row in result.rows)
    for row in result.rows:
        assert set(row.as_json()) >= {"recipe", "flops", "loss_delta", "saving", "extrapolation"}
        if row.saving is not None:  # an interval, even where the law is extrapolated far: a saving is at most 100%
            assert row.saving[0] <= row.saving_mid <= row.saving[1] <= 1.0


def test_staged_flops_are_the_sum_over_its_stages():
    result = plan(CONFIGS / "staged.yaml")
    target = result.target
    staged = next(row for row in result.rows if row.recipe.law == "depth@0.8")
    per_token = [cost(target.model.model_copy(update={"num_layers": d}), target)[1] for d in (1, 2, 4)]
    steps = [160, 160, 80]  # growths at 0.4 and 0.8 of 400 steps
    assert staged.recipe.flops == sum(f * s * target.step_tokens for f, s in zip(per_token, steps))
    assert "llama 128×2 (from step 160) → llama 128×4 (from step 320)" in staged.recipe.details


def test_width_and_depth_stages_halve_width_and_heads_then_grow_both():
    result = plan(CONFIGS / "staged.yaml")
    target = result.target
    both = next(row for row in result.rows if row.recipe.law == "both@0.8")
    half = {"hidden_size": 64, "num_heads": 2}
    shapes = [{**half, "num_layers": 1}, {**half, "num_layers": 2}, {}]
    per_token = [cost(target.model.model_copy(update=shape), target)[1] for shape in shapes]
    assert both.recipe.flops == sum(f * s * target.step_tokens for f, s in zip(per_token, [160, 160, 80]))
    growth = both.recipe.config["growth"]
    assert growth == [{"at_step": 160, "num_layers": 2}, {"at_step": 320, "hidden_size": 128, "num_layers": 4,
                                                             "num_heads": 4}]  # fmt: skip


def test_have_adds_grow_ki_and_upcycling_with_the_base_training(tmp_path):
    have = _have(tmp_path / "small", _llama())
    result = plan(CONFIGS / "staged.yaml", [have])
    rows = {row.recipe.law: row for row in result.rows}
    assert {"grow", "ki", "upcycle"} <= set(rows)
    base_n = cost(result.target.model.model_copy(update={"num_layers": 2, "intermediate_size": 344}),
                  result.target)[0]  # fmt: skip
    assert rows["grow"].recipe.setting["base_tau"] == pytest.approx(1_638_400 / base_n)
    assert rows["ki"].recipe.flops > rows[None].recipe.flops  # the teacher's forward passes are counted
    assert rows["grow"].extrapolation  # the transcribed points stop at N ≈ 2.6e5


def test_written_config_is_a_valid_pretrain_config_and_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "plan.yaml"
    assert main(["plan", "--config", str(CONFIGS / "staged.yaml"), "--write-config", str(out)]) == 0
    config = load_config(out)  # the recommendation: width and depth, 64 wide × 1 layer grown to 128 × 4
    assert (config.model.hidden_size, config.growth[-1].hidden_size, config.growth[-1].num_layers) == (64, 128, 4)
    assert main(["plan", "--config", str(CONFIGS / "staged.yaml"), "--write-config", str(out)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err


def test_json_lists_the_recommendation_first(capsys):
    assert main(["plan", "--config", str(CONFIGS / "staged.yaml"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["recipe"] and all(isinstance(r["extrapolation"], bool) for r in rows)


def _one_line_exit_2(capsys, argv: list[str], words: str) -> None:
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    staged = str(CONFIGS / "staged.yaml")
    gpt2 = _have(
        tmp_path / "gpt2", GPT2Config(n_embd=64, n_layer=2, n_head=2, vocab_size=4096, bos_token_id=0, eos_token_id=0)
    )
    _one_line_exit_2(capsys, ["plan", "--config", staged, "--have", gpt2], "is a gpt2 model")
    other = _have(tmp_path / "vocab", _llama(vocab=2048))
    _one_line_exit_2(capsys, ["plan", "--config", staged, "--have", other], "embeds 2048 tokens")
    _one_line_exit_2(capsys, ["plan", "--config", staged, "--have", str(tmp_path / "absent")], "not a folder")
    zero = tmp_path / "zero.yaml"
    zero.write_text(yaml.safe_dump({"model": {"family": "llama"}, "train": {"max_steps": 0}}))
    _one_line_exit_2(capsys, ["plan", "--config", str(zero)], "0 tokens")
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump({"train": {"max_steps": 10}}))
    _one_line_exit_2(capsys, ["plan", "--config", str(bare)], "no model: section")
    _one_line_exit_2(capsys, ["plan", "--config", staged, "--jsno"], "unrecognized arguments")
    _one_line_exit_2(capsys, ["plan", "--config", str(tmp_path / "none.yaml")], "not found")
    with pytest.raises(KinheritError, match="no model: section"):
        plan(bare)


def test_a_grown_model_counts_its_sources_training(tmp_path):
    small = _have(tmp_path / "small", _llama(), tokens=1000)
    grown = tmp_path / "grown"
    _llama(layers=3).save_pretrained(grown)
    (grown / "growth.json").write_text(json.dumps({"source": str(Path(small).resolve())}))
    assert trained_tokens(grown) == (1000, None)  # no run of its own: only its source's tokens
    assert trained_tokens(Path(small)) == (1000, str(tmp_path / "small" / "metrics.jsonl"))


@pytest.mark.parametrize("name", ["efficiency.yaml", "task.yaml", "recycle-experiment.yaml"])
def test_configs_of_other_commands_are_refused_in_one_line(capsys, name):
    _one_line_exit_2(capsys, ["plan", "--config", str(CONFIGS / name)], "config")

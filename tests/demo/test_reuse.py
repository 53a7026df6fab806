"""The experiment reuses a finished run or grown folder only when it was made with the same settings."""

from __future__ import annotations

import pytest
import transformers

from kinherit.demo.experiment import ExperimentSpec, _grown_init, _refuse_changed, train_run
from kinherit.errors import KinheritError


def test_a_refusal_names_the_changed_keys_with_both_values(tmp_path):
    old = {"train": {"learning_rate": 1e-3, "seed": 0}, "out": "a"}
    new = {"train": {"learning_rate": 2e-3, "seed": 0}, "out": "a", "teacher": {"path": "t"}}
    match = r"other settings \(teacher: None -> \{'path': 't'\}; train.learning_rate: 0.001 -> 0.002\)"
    with pytest.raises(KinheritError, match=match):
        _refuse_changed("run", tmp_path, old, new)
    _refuse_changed("run", tmp_path, old, old)


def test_a_finished_run_is_reused_only_with_the_same_config(tmp_path, tiny_run, capsys):
    config = tiny_run(tmp_path / "run", max_steps=2, eval_steps=2, save_steps=2)
    model_dir = train_run(config)
    assert (model_dir / "config.json").is_file()
    assert train_run(config) == model_dir and "reusing finished run" in capsys.readouterr().out
    changed = {**config, "train": {**config["train"], "learning_rate": 1e-2}}
    with pytest.raises(KinheritError, match=r"made with other settings \(train.learning_rate: 0.003 -> 0.01\)"):
        train_run(changed)


def test_a_grown_init_is_reused_only_with_the_same_growth(tmp_path):
    teacher = tmp_path / "teacher"
    config = transformers.LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=97,
        max_position_embeddings=64,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(teacher)
    spec = ExperimentSpec(
        teacher_model={"family": "llama", "hidden_size": 32, "num_layers": 2, "num_heads": 4, "intermediate_size": 64},
        student_model={"family": "llama", "hidden_size": 64, "num_layers": 4, "num_heads": 8},
    )
    assert spec.student_shape()["intermediate_size"] == 128  # the teacher's FFN ratio, derived once
    out = _grown_init(spec, teacher, tmp_path / "grown")
    assert _grown_init(spec, teacher, out) == out
    with pytest.raises(KinheritError, match="noise_db: 0.0 -> 20"):
        _grown_init(spec.model_copy(update={"grow": {**spec.grow, "noise_db": 20}}), teacher, out)

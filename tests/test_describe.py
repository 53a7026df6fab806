"""`--help-config` and `grow --help` are generated from the pydantic models and the registries."""

import pytest

from kinherit.cli import main
from kinherit.config import DataConfig, RunConfig, TokenizerConfig
from kinherit.describe import schema_rows
from kinherit.recycle.config import ExperimentConfig, FinetuneConfig

DOCUMENTED_ELSEWHERE = ("data.", "data")  # DataConfig / TokenizerConfig: documented on the data branch


def _help(capsys, argv):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("command", "model"),
    [("pretrain", RunConfig), ("finetune", FinetuneConfig), ("recycle-experiment", ExperimentConfig)],
)
def test_help_config_lists_every_key_with_its_default_and_doc(capsys, command, model):
    text = _help(capsys, [command, "--help-config"])
    rows = schema_rows(model)
    assert len(rows) >= 9
    for key, type_name, default, doc in rows:
        assert f"{key}  ({type_name}, default {default})" in text
        assert doc in text
        if model is not RunConfig or not key.startswith(DOCUMENTED_ELSEWHERE):
            assert doc, f"{command}: config key {key} has no docstring"


def test_pretrain_help_config_shows_defaults_families_and_schedule_references(capsys):
    text = _help(capsys, ["pretrain", "--help-config"])
    assert "model.hidden_size  (int, default 128)\n    Width of the residual stream (d)." in text
    assert "teacher  (section, default null)" in text and "    max_steps: 400" in text
    assert (
        "linear — Qin et al. 2022, Knowledge Inheritance for Pre-trained Language Models, https://arxiv.org/abs/2105.13880"
        in text
    )
    assert "llama — Touvron et al. 2023" in text


def test_grow_help_lists_every_operator_with_its_reference(capsys):
    from kinherit.grow.depth import DEPTH_OPERATORS
    from kinherit.grow.width import WIDTH_OPERATORS

    text = _help(capsys, ["grow", "--help"])
    for registry in (WIDTH_OPERATORS, DEPTH_OPERATORS):
        for name, reference in registry.references.items():
            assert f"{registry.kind} {name} — {reference}" in text


def test_data_section_models_are_in_the_schema():
    keys = [row[0] for row in schema_rows(RunConfig)]
    assert [f"data.{k}" for k in DataConfig.model_fields if k != "tokenizer"] == [
        k for k in keys if k.startswith("data.") and not k.startswith("data.tokenizer")
    ]
    assert [f"data.tokenizer.{k}" for k in TokenizerConfig.model_fields] == [
        k for k in keys if k.startswith("data.tokenizer.")
    ]

import pytest

from kinherit.config import load_config, parse_overrides
from kinherit.errors import KinheritError


def test_overrides_are_nested_and_typed():
    tree = parse_overrides(["--train.max_steps=10", "--model.hidden_size", "256", "--data.sources=[a, b]"])
    assert tree == {"train": {"max_steps": 10}, "model": {"hidden_size": 256}, "data": {"sources": ["a", "b"]}}


def test_yaml_plus_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("out: x\nmodel: {family: gpt2, hidden_size: 64}\ntrain: {max_steps: 5}\n")
    config = load_config(path, ["--train.learning_rate=1e-3", "--model.num_layers=3"])
    assert config.model.family == "gpt2" and config.model.hidden_size == 64 and config.model.num_layers == 3
    assert config.train_args["max_steps"] == 5 and config.train_args["learning_rate"] == 1e-3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["--modle.family=gpt2"], "modle"),
        (["--model.hiden_size=3"], "model.hiden_size"),
        (["--train.lerning_rate=1"], "did you mean 'learning_rate'"),
        (["--model.family=gpt5"], "unknown family 'gpt5'; choose one of bert, "),
        (["--model.hidden_size=30", "--model.num_heads=4"], "not divisible by num_heads"),
        (["--model.num_heads=4", "--model.num_kv_heads=3"], "not divisible by num_kv_heads"),
        (["--data.seq_len=0"], "data.seq_len"),
    ],
)
def test_bad_keys_name_the_key(overrides, message):
    with pytest.raises(KinheritError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, overrides)


def test_missing_config_file(tmp_path):
    with pytest.raises(KinheritError, match="not found"):
        load_config(tmp_path / "nope.yaml")

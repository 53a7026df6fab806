import pytest

from kinherit.config import load_config, parse_overrides, validate_config
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
        (["--data.max_val_tokens=100"], "data.max_val_tokens 100 is less than one block of data.seq_len=128"),
    ],
)
def test_bad_keys_name_the_key(overrides, message):
    with pytest.raises(KinheritError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, overrides)


def test_missing_config_file(tmp_path):
    with pytest.raises(KinheritError, match="not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"model": {"hiden_size": 64}}, "config key model.hiden_size: unknown key (did you mean 'hidden_size'?)"),
        (
            {"data": {"tokenizer": {"train_vocab": 64}}},
            "config key data.tokenizer.train_vocab: unknown key (did you mean 'train_vocab_size'?)",
        ),
        (
            {"teacher": {"path": "t", "temprature": 2}},
            "config key teacher.temprature: unknown key (did you mean 'temperature'?)",
        ),
        ({"model": {"form": "x"}}, "config key model.form: unknown key (did you mean 'from'?)"),
        ({"dat": {}}, "config key dat: unknown key (did you mean 'data'?)"),
    ],
)
def test_did_you_mean_in_every_section(raw, message):
    with pytest.raises(KinheritError) as err:
        validate_config(raw)
    assert str(err.value) == message


def test_a_path_next_to_the_config_but_not_here_names_both_directories(tmp_path, monkeypatch):
    from kinherit.config import load_config

    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "corpus.txt").write_text("text\n")
    config = tmp_path / "project" / "run.yaml"
    config.write_text("data: {sources: [corpus.txt]}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KinheritError) as err:
        load_config(config)
    assert str(err.value) == (
        f"data.sources 'corpus.txt' in {config} does not exist in the current directory {tmp_path} (paths in a "
        f"config resolve against it) but does next to the config file: run from {tmp_path / 'project'} or write it "
        f"as {tmp_path / 'project' / 'corpus.txt'}"
    )
    monkeypatch.chdir(tmp_path / "project")
    assert load_config(config).data.sources == ["corpus.txt"]


def test_a_missing_relative_source_says_which_directory(tmp_path, monkeypatch):
    from kinherit.data.sources import resolve_sources

    monkeypatch.chdir(tmp_path)
    with pytest.raises(KinheritError, match=f"^data source 'corpus.txt' does not exist in {tmp_path}; "):
        resolve_sources(["corpus.txt"])


def test_ki_defaults_follow_the_existing_teacher_bench():
    """τ = 1 and auto over the whole run with an online teacher; a cache (no model to measure the teacher's
    validation loss with) gets linear over half the run; a given schedule or T is kept."""
    online = validate_config({"teacher": {"path": "t"}}).teacher
    assert (online.schedule, online.steps, online.temperature, online.alpha0) == ("auto", 1.0, 1.0, 1.0)
    cached = validate_config({"teacher": {"cache": "c"}}).teacher
    assert (cached.schedule, cached.steps, cached.temperature) == ("linear", 0.5, 1.0)
    assert validate_config({"teacher": {"path": "t", "schedule": "heaviside"}}).teacher.steps == 0.5
    assert validate_config({"teacher": {"path": "t", "steps": 40}}).teacher.schedule == "auto"
    with pytest.raises(KinheritError, match="teacher.schedule: auto .* set teacher.path, not teacher.cache"):
        validate_config({"teacher": {"cache": "c", "schedule": "auto"}})


def test_a_run_recorded_before_the_lr_rule_after_growth_reads_with_the_factor_it_trained_at(tmp_path):
    """A pretrain record without growth_lr_factor: a run from a grown folder trained at 1 (so resuming it under the
    default 2 is a changed config), any other at the default (so it resumes); a fine-tuning record gets no key."""
    from kinherit.config import read_recorded_config

    grown = tmp_path / "grown"
    grown.mkdir()
    (grown / "growth.json").write_text("{}")
    record = tmp_path / "config.resolved.yaml"
    record.write_text(f"growth: []\nmodel: {{from: {grown}}}\n")
    assert read_recorded_config(record)["growth_lr_factor"] == 1.0
    record.write_text("growth: []\nmodel: {family: llama}\n")
    assert read_recorded_config(record)["growth_lr_factor"] == 2.0
    record.write_text("model: {base: some/model}\n")
    assert "growth_lr_factor" not in read_recorded_config(record)


def test_unset_removes_keys_of_the_file_so_they_take_their_defaults(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "model: {family: gpt2, hidden_size: 64, num_layers: 3}\ndata: {tokenizer: {train_vocab_size: 300}}\n"
    )
    config = load_config(
        path, ["--unset=model.hidden_size,model.num_layers", "--unset", "data.tokenizer.train_vocab_size"]
    )
    assert (config.model.family, config.model.hidden_size, config.model.num_layers) == ("gpt2", 128, 2)
    assert config.data.tokenizer.train_vocab_size == 4096  # the default; null would have set None
    assert load_config(path, ["--unset=teacher.path"]).teacher is None  # a key the file lacks: nothing to remove


@pytest.mark.parametrize("value", ["", "model.", "model..x,train.seed"])
def test_unset_needs_key_names(value):
    with pytest.raises(KinheritError, match=r"^--unset=.*: name the keys to remove, e\.g\. --unset=model\.hidden_size"):
        parse_overrides([f"--unset={value}"])


def test_model_from_on_the_command_line_replaces_the_files_family_and_sizes(tmp_path, capsys):
    path = tmp_path / "small.yaml"
    path.write_text("model: {family: llama, hidden_size: 64, num_layers: 3, dropout: 0.1}\n")
    config = load_config(path, ["--model.from=runs/grown"])
    assert config.model.from_ == "runs/grown" and config.model.family is None and config.model.dropout == 0.1
    assert config.model.model_fields_set >= {"from_", "dropout"} and "hidden_size" not in config.model.model_fields_set
    assert (
        capsys.readouterr().out.strip()
        == f"model.from runs/grown overrides model.family/hidden_size/num_layers of {path} (the folder's model is "
        "trained as it is)"
    )
    explicit = load_config(path, ["--model.from=runs/grown", "--model.hidden_size=64"])  # kept: preflight checks it
    assert "hidden_size" in explicit.model.model_fields_set and "num_layers" not in explicit.model.model_fields_set
    path.write_text("model: {family: llama, from: runs/grown}\n")
    with pytest.raises(
        KinheritError,
        match=r"set either model.family or model.from, not both \(on the command line, "
        r"--unset=model.family or --unset=model.from removes the config file's\)",
    ):  # in the file: refused
        load_config(path)
    assert load_config(path, ["--unset=model.from"]).model.family == "llama"

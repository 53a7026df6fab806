"""Errors that need no data come before the tokenizer is trained and the corpus packed (`train.preflight`)."""

import pytest

from kinherit.config import validate_config
from kinherit.errors import KinheritError
from kinherit.train import pretrain as pretrain_module
from kinherit.train.pretrain import pretrain


@pytest.fixture()
def no_data(monkeypatch):
    """Any attempt to read the corpus fails the test: the error must come first."""
    monkeypatch.setattr(
        pretrain_module, "prepare_corpus", lambda *a, **k: pytest.fail("the corpus was read before the error")
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir):
    """A finished 2-step llama run (a model folder to point teacher.path / model.from at)."""
    from tests.conftest import _tiny_run

    out = tmp_path_factory.mktemp("trained") / "run"
    return pretrain(
        validate_config(_tiny_run(out, cache_dir, "llama", max_steps=2, eval_steps=2, save_steps=2))
    ).model_dir


def _fails(raw, match):
    with pytest.raises(KinheritError, match=match) as err:
        pretrain(validate_config(raw))
    assert "\n" not in str(err.value)


def test_missing_teacher_path(tmp_path, tiny_run, no_data):
    raw = {**tiny_run(tmp_path / "ki"), "teacher": {"path": str(tmp_path / "nowhere")}}
    _fails(raw, r"^teacher.path .*nowhere not found \(resolved against ")


def test_teacher_path_that_is_not_a_model(tmp_path, tiny_run, no_data):
    (tmp_path / "empty").mkdir()
    _fails(
        {**tiny_run(tmp_path / "ki"), "teacher": {"path": str(tmp_path / "empty")}},
        r"not a Hugging Face model folder \(no config.json\)",
    )


def test_teacher_of_another_task(tmp_path, tiny_run, trained, no_data):
    raw = tiny_run(tmp_path / "ki", family="bert")
    _fails({**raw, "teacher": {"path": str(trained)}}, r"is a causal LM \(llama\) but the student a masked LM")


def test_seq_len_beyond_the_teachers_positions(tmp_path, tiny_run, trained, no_data):
    raw = tiny_run(tmp_path / "ki")
    raw["data"]["seq_len"] = 4096
    raw["model"]["max_position_embeddings"] = 4096
    _fails({**raw, "teacher": {"path": str(trained)}}, r"^data.seq_len 4096 exceeds the \d+ positions of teacher.path")


def test_missing_model_from(tmp_path, tiny_run, no_data):
    raw = tiny_run(tmp_path / "b")
    raw["model"] = {"from": str(tmp_path / "nowhere")}
    _fails(raw, r"^model.from .*nowhere is not a Hugging Face model folder")


def test_model_from_without_weights(tmp_path, tiny_run, trained, no_data):
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(trained, bare)
    (bare / "model.safetensors").unlink()
    raw = tiny_run(tmp_path / "b")
    raw["model"] = {"from": str(bare)}
    _fails(raw, r"^model.from .*bare has a config.json but no weights")


def test_seq_len_beyond_model_froms_positions(tmp_path, tiny_run, trained, no_data):
    raw = tiny_run(tmp_path / "b")
    raw["model"] = {"from": str(trained)}
    raw["data"]["seq_len"] = 4096
    _fails(raw, r"^data.seq_len 4096 exceeds the \d+ positions of model.from")


def test_seq_len_beyond_the_built_models_positions_is_a_config_error(tmp_path, tiny_run):
    raw = tiny_run(tmp_path / "b")
    raw["model"]["max_position_embeddings"] = 16
    with pytest.raises(KinheritError, match=r"model.max_position_embeddings: 16 is fewer than data.seq_len 32"):
        validate_config(raw)


def test_a_logger_that_is_not_installed(tmp_path, tiny_run, no_data):
    _fails(tiny_run(tmp_path / "r", report_to=["wandb"]), r"^train.report_to: the logger 'wandb' is not installed")


def test_an_unknown_logger(tmp_path, tiny_run, no_data):
    _fails(tiny_run(tmp_path / "r", report_to=["tensorbord"]), r"^train.report_to: unknown logger 'tensorbord'")


def test_fsdp_in_one_process(tmp_path, tiny_run, no_data):
    _fails(
        tiny_run(tmp_path / "r", fsdp="full_shard"),
        r"^train.fsdp asks for FSDP, which shards over several processes, but this run has 1",
    )


def test_model_from_refuses_a_size_it_does_not_have(tmp_path, tiny_run, trained, no_data):
    raw = tiny_run(tmp_path / "b")
    raw["model"] = {"from": str(trained), "hidden_size": 64, "num_layers": 2}  # num_layers matches: not named
    _fails(
        raw,
        r"^model.from .* sets the model's sizes, but the config asks for model.hidden_size=64 \(the model has 32\); "
        r"remove",
    )


def test_model_from_records_the_loaded_sizes_and_the_record_loads_back(tmp_path, tiny_run, trained):
    import yaml

    from kinherit.config import load_config

    raw = tiny_run(tmp_path / "b", max_steps=1, eval_steps=1, save_steps=1)
    raw["model"] = {"from": str(trained)}
    pretrain(validate_config(raw))
    resolved = tmp_path / "b" / "config.resolved.yaml"
    model = yaml.safe_load(resolved.read_text())["model"]
    assert {k: model[k] for k in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size")} == {
        "hidden_size": 32,
        "num_layers": 2,
        "num_heads": 4,
        "num_kv_heads": 4,
        "intermediate_size": 64,
    }
    again = load_config(resolved, ["--out", str(tmp_path / "c")])
    assert pretrain(again).final_step == 1  # the recorded sizes agree with the model: accepted


def test_a_sharding_request_accelerate_does_not_honour_is_refused_not_dropped():
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from kinherit.train.distributed import check_distributed_request, run_layout

    two = SimpleNamespace(fsdp=[["full_shard"]], deepspeed=None, world_size=2, fsdp_config={"version": 2})
    check_distributed_request(two)  # before the Trainer exists: two processes may still shard
    check_distributed_request(two, DistributedType.FSDP)
    with pytest.raises(
        KinheritError, match=r"^train.fsdp asks for FSDP, but accelerate runs these 2 processes as MULTI_CPU"
    ):
        check_distributed_request(two, DistributedType.MULTI_CPU)  # what torchrun on CPU gives: plain DDP
    zero3 = SimpleNamespace(fsdp=None, deepspeed="ds.json", world_size=2, fsdp_config=None)
    with pytest.raises(
        KinheritError, match=r"^train.deepspeed asks for DEEPSPEED, but accelerate runs these 2 processes as MULTI_GPU"
    ):
        check_distributed_request(zero3, DistributedType.MULTI_GPU)
    check_distributed_request(SimpleNamespace(fsdp=None, deepspeed=None, world_size=2), DistributedType.MULTI_CPU)
    assert run_layout(two, DistributedType.FSDP, None) == {
        "world_size": 2,
        "distributed_type": "FSDP",
        "requested": "FSDP",
        "teacher": None,
        "fsdp_config": {"version": 2},
        "fsdp_plugin": None,
    }
    assert run_layout(zero3, DistributedType.DEEPSPEED, None) == {
        "world_size": 2,
        "distributed_type": "DEEPSPEED",
        "requested": "DEEPSPEED",
        "teacher": None,
    }


def test_the_users_fsdp_config_is_what_the_run_folder_records(tmp_path):
    """TrainingArguments rewrites a nested fsdp_config in place ({fsdp_version: 2} became {version: 2, xla: false,
    ...}); config.resolved.yaml keeps the user's keys, run.json what transformers and accelerate resolved."""
    from pathlib import Path

    import yaml
    from accelerate.utils import FullyShardedDataParallelPlugin

    from kinherit.config import load_config
    from kinherit.train.distributed import plugin_settings
    from kinherit.train.pretrain import resolved_yaml
    from kinherit.train.run import training_arguments

    small = Path(__file__).parents[2] / "configs" / "small.yaml"
    config = load_config(
        small, ["--train.fsdp=full_shard", "--train.fsdp_config={fsdp_version: 2}", f"--out={tmp_path}"]
    )
    args = training_arguments(config.train_args, tmp_path)
    assert args.fsdp_config["version"] == 2 and "xla" in args.fsdp_config  # transformers' resolved form
    assert yaml.safe_load(resolved_yaml(config))["train"]["fsdp_config"] == {"fsdp_version": 2}
    plugin = FullyShardedDataParallelPlugin(**args.fsdp_plugin_args)
    settings = plugin_settings(plugin)
    assert settings["fsdp_version"] == 2 and settings["reshard_after_forward"] is True
    assert (
        settings["state_dict_type"] == "FULL_STATE_DICT" and "auto_wrap_policy" not in settings
    )  # a callable: left out


def test_model_from_on_the_command_line_trains_the_folder_and_refuses_a_size_given_beside_it(
    tmp_path, tiny_run, trained, capsys
):
    """`kinherit pretrain --config small.yaml --model.from=DIR`: the file's family and sizes give way to the folder's;
    a size given on the command line too is still checked against the folder (before any data is read)."""
    import yaml

    from kinherit.cli import main

    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(tiny_run(tmp_path / "b", max_steps=1, eval_steps=1, save_steps=1)))
    assert main(["pretrain", "--config", str(path), f"--model.from={trained}", "--model.num_layers=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "asks for model.num_layers=3 (the model has 2); remove those keys (on the command line: "
        "--unset=model.num_layers), or grow the model first (kinherit grow) to change its shape"
    ), err
    assert not (tmp_path / "b").exists()
    assert main(["pretrain", "--config", str(path), f"--model.from={trained}"]) == 0
    out = capsys.readouterr().out
    assert (
        f"model.from {trained} overrides model.family/hidden_size/num_layers/num_heads/intermediate_size of {path}"
        in out
    )
    assert yaml.safe_load((tmp_path / "b" / "config.resolved.yaml").read_text())["model"]["from"] == str(trained)

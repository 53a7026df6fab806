"""Bad KI input: one line from `kinherit` and exit status 2, before any training. A padded teacher is fine."""

import shutil

import pytest
import yaml

from kinherit.cli import main
from kinherit.config import validate_config
from kinherit.data.tokenizer import train_bpe
from kinherit.hf_folder import load_lm
from kinherit.metrics.log import read_metrics
from kinherit.train.pretrain import pretrain
from tests.inherit.conftest import student_run


def _fails(tmp_path, capsys, config, *extra):
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["pretrain", "--config", str(tmp_path / "run.yaml"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("kinherit pretrain: error: "), err
    return err[-1]


def test_missing_or_non_model_teacher(tmp_path, cache_dir, capsys):
    config = student_run(tmp_path / "s", cache_dir, {"path": str(tmp_path / "nowhere")})
    assert "teacher.path" in (err := _fails(tmp_path, capsys, config)) and "not found" in err
    (tmp_path / "empty").mkdir()
    config["teacher"]["path"] = str(tmp_path / "empty")
    assert "is not a Hugging Face model folder (no config.json)" in _fails(tmp_path, capsys, config)


def test_vocabulary_mismatch_names_both_sizes(tmp_path, cache_dir, teacher_dir, capsys):
    other = tmp_path / "other-vocab"
    shutil.copytree(teacher_dir, other)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (other / name).unlink(missing_ok=True)
    train_bpe(iter(["def f(x):\n    return x + 1\n"] * 50), 300, tmp_path / "tok")
    for file in (tmp_path / "tok").iterdir():
        shutil.copy(file, other / file.name)
    err = _fails(tmp_path, capsys, student_run(tmp_path / "s", cache_dir, {"path": str(other)}))
    assert (
        "teacher tokenizer (" in err
        and "tokens, " + str(other) in err
        and "differs from the student's (512 tokens" in err
    )


@pytest.mark.parametrize(
    ("teacher", "message"),
    [
        ({"steps": 50}, "teacher.steps 50 exceeds train.max_steps 20"),
        ({"alpha0": -0.5}, "config key teacher.alpha0: Input should be greater than or equal to 0"),
        ({"temperature": 0}, "config key teacher.temperature: Input should be greater than 0"),
        ({"steps": 1.5}, "must be a step count (int ≥ 1) or a fraction in (0, 1]"),
        ({"cache": "x"}, "set exactly one of teacher.path (online teacher) or teacher.cache"),
        (
            {"loss": "revers_kl"},
            "config key teacher.loss: unknown KD loss 'revers_kl'; choose one of forward_kl, "
            "reverse_kl, jsd, skew_kl (did you mean 'reverse_kl'?)",
        ),
        (
            {"cross_tokenizer": "alms"},
            "config key teacher.cross_tokenizer: unknown cross-tokenizer method 'alms'; choose one of "
            "alm, shared_prefix, shared_vocab (did you mean 'alm'?)",
        ),
        (
            {"loss": "jsd", "cross_tokenizer": "alm"},
            "teacher.loss jsd applies to same-tokenizer teachers; teacher.cross_tokenizer alm has its own loss",
        ),
    ],
)
def test_bad_settings(tmp_path, cache_dir, capsys, teacher, message):
    config = student_run(tmp_path / "s", cache_dir, {"path": str(tmp_path), **teacher})
    assert message in _fails(tmp_path, capsys, config)


def test_cache_errors(tmp_path, cache_dir, teacher_dir, capsys):
    config = student_run(tmp_path / "s", cache_dir, {"cache": str(tmp_path)})
    assert "is not a teacher cache (no meta.json)" in _fails(tmp_path, capsys, config)
    bert = tmp_path / "bert"
    pretrain(validate_config(student_run(bert, cache_dir, family="bert", max_steps=1, eval_steps=1)))
    capsys.readouterr()
    assert main(["cache-teacher", "--teacher", str(bert / "model"), "--config", str(tmp_path / "run.yaml")]) == 2
    assert "the cache serves causal LMs only" in capsys.readouterr().err


def test_a_teacher_padded_to_a_larger_vocabulary_is_cut_to_the_shared_one(tmp_path, cache_dir, teacher_dir):
    padded = load_lm(teacher_dir)
    padded.resize_token_embeddings(padded.config.vocab_size + 64)
    padded.save_pretrained(tmp_path / "padded")
    for file in teacher_dir.glob("*token*"):
        shutil.copy(file, tmp_path / "padded" / file.name)
    config = student_run(
        tmp_path / "s",
        cache_dir,
        {"path": str(tmp_path / "padded"), "schedule": "linear", "steps": 2},
        max_steps=2,
        eval_steps=2,
    )
    pretrain(validate_config(config))
    assert all("kd_loss" in e for e in read_metrics(tmp_path / "s" / "metrics.jsonl") if "loss" in e)


def test_cache_teacher_checks_the_teacher_folder_as_pretrain_does(tmp_path, cache_dir, teacher_dir, capsys):
    """One implementation of each data-free teacher check (`check_teacher_folder`): a teacher without weights, or
    with fewer positions than data.seq_len, is refused by `cache-teacher` with the line `pretrain` gives."""
    no_weights = tmp_path / "no-weights"
    shutil.copytree(teacher_dir, no_weights, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    short = student_run(tmp_path / "s", cache_dir, {"path": str(teacher_dir)})
    short["data"]["seq_len"] = short["model"]["max_position_embeddings"] = 4096
    for teacher, config in (
        (no_weights, student_run(tmp_path / "s", cache_dir, {"path": str(no_weights)})),
        (teacher_dir, short),
    ):
        pretrain_line = _fails(tmp_path, capsys, config).removeprefix("kinherit pretrain: error: ")
        assert (
            main(
                [
                    "cache-teacher",
                    "--teacher",
                    str(teacher),
                    "--config",
                    str(tmp_path / "run.yaml"),
                    "--out",
                    str(tmp_path / "c"),
                ]
            )
            == 2
        )
        assert capsys.readouterr().err.strip().splitlines()[-1] == f"kinherit cache-teacher: error: {pretrain_line}"
        assert not (tmp_path / "c").exists()

"""Bad input to `kinherit recycle` / `finetune`: one line naming the problem, exit 2."""

import pytest
import yaml

from kinherit.cli import main

from .conftest import make_adapter, make_base, make_tuned


def _recycle(capsys, a, tuned, b, out, *extra):
    code = main(
        ["recycle", "--old-base", str(a), "--old-tuned", str(tuned), "--new-base", str(b), "--out", str(out), *extra]
    )
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


@pytest.fixture()
def models(tmp_path, tokenizer_dir):
    a = make_base(tmp_path / "A", tokenizer_dir)
    return a, make_tuned(a, tmp_path / "A_tuned")


def test_tuned_weights_that_do_not_correspond_to_a(tmp_path, tokenizer_dir, models, capsys):
    a, _ = models
    other = make_base(tmp_path / "other", tokenizer_dir, intermediate_size=96)
    code, err = _recycle(capsys, a, make_tuned(other, tmp_path / "other_tuned"), a, tmp_path / "out")
    assert code == 2 and err.startswith(
        "kinherit recycle: error: tensor 'model.layers.0.mlp.down_proj.weight' is (32, 96)"
    )
    assert "A_TUNED was not fine-tuned from OLD_BASE" in err and not (tmp_path / "out").exists()


def test_new_base_of_another_family(tmp_path, tokenizer_dir, models, capsys):
    a, tuned = models
    code, err = _recycle(capsys, a, tuned, make_base(tmp_path / "gpt2", tokenizer_dir, family="gpt2"), tmp_path / "out")
    assert code == 2 and "NEW_BASE is a gpt2 model but OLD_BASE is llama" in err and "distillation" in err


def test_grown_base_without_growth_json_says_how_to_fix(tmp_path, tokenizer_dir, models, capsys):
    a, tuned = models
    code, err = _recycle(
        capsys, a, tuned, make_base(tmp_path / "wide", tokenizer_dir, hidden_size=64, num_heads=8), tmp_path / "out"
    )
    assert code == 2 and "NEW_BASE has no growth.json" in err and "kinherit grow" in err and "--growth" in err


def test_adapter_for_a_different_base_architecture(tmp_path, tokenizer_dir, models, capsys):
    a, _ = models
    gpt2 = make_base(tmp_path / "gpt2", tokenizer_dir, family="gpt2")
    adapter = make_adapter(gpt2, tmp_path / "gpt2-adapter")
    code, err = _recycle(capsys, a, adapter, a, tmp_path / "out", "--adapter")
    assert code == 2 and "was trained on a gpt2 base, but OLD_BASE is llama" in err
    code, err = _recycle(capsys, a, adapter, a, tmp_path / "out")
    assert code == 2 and "is a PEFT adapter folder; pass --adapter" in err


def test_finetune_config_error_is_one_line(tmp_path, capsys):
    path = tmp_path / "ft.yaml"
    path.write_text(yaml.safe_dump({"model": {"base": str(tmp_path / "missing")}, "data": {"task": "stdlib-packages"}}))
    assert main(["finetune", "--config", str(path), "--data.max_lenght=8"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "kinherit finetune: error: config key data.max_lenght: unknown key (did you mean 'max_length'?)"
    )
    assert main(["finetune", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        err == f"kinherit finetune: error: model.base {tmp_path / 'missing'} is not a Hugging Face model folder (no "
        "config.json)"
    )


def test_the_console_reports_the_head_once_as_kinherit_filled_it(tmp_path, tokenizer_dir, models, capfd, caplog):
    """transformers' LOAD REPORT ("score.weight MISSING … newly initialized") is not shown right before kinherit
    says where the head came from; kinherit checks every key of that load itself (`hf_folder.load_classifier`)."""
    import logging

    a, tuned = models
    caplog.set_level(logging.INFO, logger="transformers")
    capfd.readouterr()
    assert (
        main(
            [
                "recycle",
                "--old-base",
                str(a),
                "--old-tuned",
                str(tuned),
                "--new-base",
                str(a),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    out, err = capfd.readouterr()
    console = out + err + caplog.text
    assert "head: 1 tensors from A_tuned (score.weight)" in console
    assert "LOAD REPORT" not in console and "newly initialized" not in console and "Loading weights" not in console, (
        console
    )

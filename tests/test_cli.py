import subprocess
import sys

import pytest
import yaml

from kinherit.cli import main


def _run(tmp_path, tiny_run, capsys, *overrides, config=None):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config or tiny_run(tmp_path / "out", max_steps=2, eval_steps=2, save_steps=2)))
    code = main(["pretrain", "--config", str(path), *overrides])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["--data.sources=[/nonexistent/corpus]"], "data source '/nonexistent/corpus' does not exist"),
        (["--model.family=gpt5"], "unknown family 'gpt5'; choose one of bert, "),
        (["--model.family=gpt5"], "(did you mean 'gpt2'?)"),
        (["--train.max_stesp=3"], "did you mean 'max_steps'"),
        (["--model.max_position_embeddings=8"], "model.max_position_embeddings: 8 is fewer than data.seq_len 32"),
        (
            ["--model.from=/nonexistent/model", "--model.family=null"],
            "/nonexistent/model is not a Hugging Face model folder",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, tiny_run, capsys, overrides, message):
    code, err = _run(tmp_path, tiny_run, capsys, *overrides)
    assert code == 2
    last = err.splitlines()[-1]  # progress bars may precede it on stderr
    assert last.startswith("kinherit pretrain: error: ") and message in last and "Traceback" not in err


def test_empty_corpus(tmp_path, tiny_run, capsys):
    (tmp_path / "blank").mkdir()
    for i in range(2):
        (tmp_path / "blank" / f"{i}.txt").write_text("\n \n")
    code, err = _run(tmp_path, tiny_run, capsys, f"--data.sources=[{tmp_path / 'blank'}]")
    assert code == 2 and "is empty" in err


def test_console_script_help_lists_subcommands():
    out = subprocess.run(
        [sys.executable, "-m", "kinherit.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "pretrain" in out

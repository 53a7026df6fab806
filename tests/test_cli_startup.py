"""`kinherit --help` / `--version` start without torch; the lazy command table matches the command modules."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kinherit.cli import COMMANDS, build_parser
from kinherit.version import __version__


def _python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_help_and_version_do_not_import_torch():
    probe = (
        "import sys\nfrom kinherit.cli import main\n"
        "for argv in (['--help'], ['--version'], ['pretrain', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    proc = _python(probe)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False False"


def test_version(capsys):
    from kinherit.cli import main

    try:
        main(["--version"])
    except SystemExit as stop:
        assert stop.code == 0
    assert capsys.readouterr().out.strip() == f"kinherit {__version__}" and __version__ == "0.1.0"


def test_the_command_table_matches_the_modules():
    parser = build_parser()  # every module imported
    registered = {a.dest: a.help for a in parser._subparsers._group_actions[0]._choices_actions}
    assert registered == {name: text for name, (_, text) in COMMANDS.items()}


@pytest.mark.parametrize("command", ["pretrain", "cache-teacher", "finetune", "recycle-experiment"])
def test_a_missing_config_file_is_refused_before_torch_is_imported(command, tmp_path):
    """(cache-teacher's parser imports torch: the file is checked before the parser is built.)"""
    required = ", '--teacher', 'runs/small/model'" if command == "cache-teacher" else ""
    probe = (
        "import sys, time\nfrom kinherit.cli import main\nstart = time.perf_counter()\n"
        f"code = main([{command!r}, '--config', 'nonexist.yaml'{required}])\n"
        "print(code, 'torch' in sys.modules, time.perf_counter() - start)"
    )
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    elapsed = time.perf_counter() - started
    code, torch_imported, _ = proc.stdout.split()
    assert (code, torch_imported) == ("2", "False"), proc.stderr
    assert proc.stderr.strip() == f"kinherit {command}: error: config file nonexist.yaml not found (in {tmp_path})"
    assert elapsed < 3.0  # with torch imported first it took 6-8 s


def test_a_folder_given_as_config_is_named_as_such(tmp_path, capsys):
    from kinherit.cli import main

    assert main(["pretrain", "--config", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"kinherit pretrain: error: config file {tmp_path} is a folder, not a YAML file"
    )


def test_pretrain_help_lists_out_and_the_override_syntax(tmp_path, monkeypatch, capsys):
    from kinherit.cli import main
    from kinherit.train import pretrain as pretrain_module

    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--out DIR output folder" in text and "--unset=model.hidden_size,model.num_layers removes keys" in text
    seen = []

    class Stop(Exception):
        pass

    def stub(config, resume=False):
        seen.append(config.out)
        raise Stop

    monkeypatch.setattr(pretrain_module, "pretrain", stub)
    (tmp_path / "run.yaml").write_text("out: runs/a\n")
    for out in ("runs/b", "yes", "007"):  # a path, never a YAML boolean or number
        with pytest.raises(Stop):
            main(["pretrain", "--config", str(tmp_path / "run.yaml"), "--out", out])
    assert seen == ["runs/b", "yes", "007"]

"""`kinherit --help` / `--version` start without torch; the lazy command table matches the command modules."""

import subprocess
import sys

from kinherit.cli import COMMANDS, build_parser
from kinherit.version import __version__


def _python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_help_and_version_do_not_import_torch():
    probe = ("import sys\nfrom kinherit.cli import main\n"
             "for argv in (['--help'], ['--version'], ['pretrain', '--help']):\n"
             "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
             "print('torch' in sys.modules, 'transformers' in sys.modules)")
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

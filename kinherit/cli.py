"""`kinherit` entry point: one subcommand per capability, each defined in its own `command.py`.

Every command module exposes `add_parser(subparsers)`, which registers its subparser and sets
`func(args) -> int`. User errors (`KinheritError`, pydantic validation) print one line and exit 2; a `--config` file
that does not exist is refused before any command module (or torch) is imported. Every command runs inside
`hf_folder.library_console`: transformers' progress bars off (a run draws its own one bar) and its known-harmless
messages dropped.
Config-driven commands get `--help-config` (the schema, generated from the pydantic models); `grow
--help` lists the growth operators with their references.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import shlex
import sys
import typing
from collections.abc import Callable
from pathlib import Path

from kinherit.describe import config_help, references_epilog
from kinherit.errors import KinheritError
from kinherit.version import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "pretrain": (
        "kinherit.train.command",
        "pre-train a model on a corpus: self-learning, or knowledge inheritance with a teacher: section",
    ),
    "grow": ("kinherit.grow.command", "grow a trained model into a bigger shape (width and/or depth) and verify it"),
    "divergence": (
        "kinherit.grow.command",
        "how far the copies of every duplicated unit of a grown (and trained) model have drifted apart",
    ),
    "report": ("kinherit.metrics.command", "compare runs: compute to reach the baseline's loss, savings, plots"),
    "eval": (
        "kinherit.metrics.command",
        "perplexity of a model folder on a text file it never trained on, packed as pretrain packs",
    ),
    "demo": (
        "kinherit.demo.command",
        "end-to-end: teacher → grow → scratch / KI / grown / grown+KI students → savings report",
    ),
    "finetune": (
        "kinherit.recycle.command",
        "fine-tune a sequence classifier (full or LoRA), optionally distilling from an old fine-tuned model",
    ),
    "recycle": (
        "kinherit.recycle.command",
        "start a new base's fine-tuning from an old fine-tuning: B + λ·(A_tuned − A), or A's adapter on B",
    ),
    "recycle-experiment": (
        "kinherit.recycle.command",
        "compare fine-tuning B from scratch, init-based, distillation-based and combined recycling",
    ),
    "plan": (
        "kinherit.plan.command",
        "predict what reusing smaller models saves on a run (staged growth, grow, KI, dense → MoE), without training",
    ),
    "cache-teacher": (
        "kinherit.inherit.command",
        "precompute a teacher's top-K outputs for knowledge inheritance (teacher.cache)",
    ),
}
"""Every subcommand: the module whose `add_parser` defines it, and its one-line help. Only the module of the
command being run is imported, so `kinherit --help` and `--version` start without torch; `tests/test_cli.py`
checks that these lines match the modules' own."""


def _run_config_help() -> str:
    from kinherit.arch import FAMILIES
    from kinherit.config import TRAIN_DEFAULTS, RunConfig
    from kinherit.kd.cross_tokenizer import METHODS
    from kinherit.kd.losses import KD_LOSSES
    from kinherit.kd.schedules import SCHEDULES

    return config_help(RunConfig, TRAIN_DEFAULTS, (FAMILIES, SCHEDULES, KD_LOSSES, METHODS))


def _finetune_config_help() -> str:
    from kinherit.recycle.config import FINETUNE_DEFAULTS, FinetuneConfig

    return config_help(FinetuneConfig, FINETUNE_DEFAULTS)


def _experiment_config_help() -> str:
    from kinherit.recycle.config import ExperimentConfig

    return (
        config_help(ExperimentConfig)
        + "\n\nfinetune: the sections of `kinherit finetune --help-config` (model.base and teacher.path are set "
        "per variant)"
    )


CONFIG_HELP: dict[str, Callable[[], str]] = {
    "pretrain": _run_config_help,
    "cache-teacher": _run_config_help,
    "plan": _run_config_help,
    "finetune": _finetune_config_help,
    "recycle-experiment": _experiment_config_help,
}


class _PrintConfigHelp(argparse.Action):
    """`--help-config`: print the command's config schema and exit (like `--help`)."""

    def __init__(self, option_strings: list[str], dest: str, text: Callable[[], str], **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)
        self.text = text

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        print(self.text())
        parser.exit()


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `kinherit grow: error: ... (see kinherit grow --help)`, exit 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The CLI; only `command`'s module is imported (every module with None, none with ""), the others are listed by
    name."""
    parser = _Parser(
        prog="kinherit",
        description="Train bigger language models by inheriting from smaller ones.",
    )
    parser.add_argument("--version", action="version", version=f"kinherit {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = {module for name, (module, _) in COMMANDS.items() if command is None or name == command}
    for module in dict.fromkeys(module for module, _ in COMMANDS.values()):
        if module in wanted:
            importlib.import_module(module).add_parser(subparsers)
    for name, (module, text) in COMMANDS.items():
        if module not in wanted:
            subparsers.add_parser(name, help=text)
    for name, text in CONFIG_HELP.items():
        if COMMANDS[name][0] in wanted:
            subparsers.choices[name].add_argument(
                "--help-config",
                action=_PrintConfigHelp,
                text=text,
                help="print every config key with its default and meaning, and exit",
            )
    if COMMANDS["grow"][0] in wanted:
        _add_references(subparsers.choices["grow"])
    return parser


def _add_references(grow: argparse.ArgumentParser) -> None:
    from kinherit.grow.depth import DEPTH_OPERATORS
    from kinherit.grow.upcycle import MOE_TARGETS
    from kinherit.grow.width import WIDTH_OPERATORS

    grow.formatter_class = argparse.RawDescriptionHelpFormatter
    grow.epilog = references_epilog(WIDTH_OPERATORS, DEPTH_OPERATORS, MOE_TARGETS)


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named in `argv` (its first non-option word), if it is one."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def _config_argument(argv: list[str]) -> str | None:
    """The value of `--config PATH` / `--config=PATH` in `argv`, if any."""
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.partition("=")[2]
    return None


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    command = _command_of(words)
    if command in CONFIG_HELP and not {"-h", "--help", "--help-config"} & set(words):
        try:  # before the command's module is imported: some import torch to build their parser (seconds)
            check_config_file(_config_argument(words))
        except KinheritError as err:
            print(f"kinherit {command}: error: {err}", file=sys.stderr)
            return 2
    parser = build_parser(command or "")
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    try:
        with _library_console():
            return int(args.func(args) or 0)
    except KinheritError as err:
        print(f"kinherit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_bars()
        print(interrupted(args, sys.argv[1:] if argv is None else argv), file=sys.stderr)
        return 130


def check_config_file(path: str | None) -> None:
    """`--config PATH` must be a file: checked before anything imports torch (seconds), so a typo is refused at once."""
    if path is not None and not Path(path).is_file():
        what = "is a folder, not a YAML file" if Path(path).is_dir() else f"not found (in {Path.cwd()})"
        raise KinheritError(f"config file {path} {what}")


@contextlib.contextmanager
def _library_console() -> typing.Iterator[None]:
    """The command runs with transformers' progress bars off and its known-harmless messages dropped
    (`hf_folder.library_console`); imported here, after the cheap checks, because it imports torch."""
    from kinherit.hf_folder import library_console

    with library_console():
        yield


def _close_bars() -> None:
    """Close the progress bars a Ctrl-C left open, so the line that follows starts on a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        bar.close()


def interrupted(args: argparse.Namespace, argv: list[str]) -> str:
    """The one line a Ctrl-C prints: the last complete checkpoint of the run and the command that continues it."""
    out = getattr(args, "run_out", None)
    if out is None:
        return f"kinherit {args.command}: interrupted"
    from kinherit.train.run import last_checkpoint

    last = last_checkpoint(Path(out))
    if last is None:
        return (
            f"kinherit {args.command}: interrupted before the first checkpoint of {out}; run the same command again "
            "to start over"
        )
    again = shlex.join(["kinherit", *argv, *([] if "--resume" in argv else ["--resume"])])
    return f"kinherit {args.command}: interrupted; last checkpoint {last}; continue with: {again}"


if __name__ == "__main__":
    sys.exit(main())

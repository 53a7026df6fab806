"""Every ```bash and ```python block of the README and of every page under docs/ runs here, as written, at tiny sizes.

The pages are read in the fixed order of PAGES (the front page, then docs/ in the order a reader meets the
commands; a page added to docs/ without an entry there fails), their blocks found generically (a new block is
covered without touching this file) and run in that order in one workspace, each once, so a block may use what
an earlier one made, on its own page or an earlier page (`runs/small`, `runs/try`, ...); a command met twice
(e.g. the front page's and a docs page's `kinherit pretrain --config configs/staged.yaml`) runs the first time
only. A command is either run or listed in NOT_RUN with the reason; NOT_RUN entries that match nothing fail.

Substitutions, the only differences from what a reader types:
- the working directory is a fresh workspace holding a copy of `configs/`; `runs/...` lands there;
- training commands get TINY overrides appended (later keys win): 2 steps, small batches, a shared corpus
  cache, and the small stdlib corpus of the tests (`tests/conftest.py`, SMALL_CORPUS) unless the command
  names its own `--data.sources`; the data files such commands name (corpus.txt, shakespeare.txt, notes.txt,
  data/train-*.parquet) are written into the workspace;
- Python blocks: `load_config(PATH, [` gets the same TINY overrides in front of the block's own, and the
  sizes in PYTHON_SUBSTITUTIONS are shrunk (each must still occur in a page);
- PREREQUISITES run first: models the pages use before the command that makes them (that command, met
  later, is not run twice) or describe only in words.

tests/test_docs.py checks what does not run: config snippets against configs/, stored result tables, links.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kinherit.cli import main
from tests.conftest import SMALL_CORPUS, STDLIB

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
PAGES = [README] + [
    ROOT / "docs" / f"{name}.md"
    for name in ("pretrain", "staged", "grow", "inherit", "recycle", "reports", "plan", "results", "architecture")
]
"""The order the blocks run in: a page may use the runs an earlier page made."""

NOT_RUN = {
    r"^make (demo|test|format)$": "creates .venv, then the demo, the whole suite or the formatter: the CI job itself",
    r"^make setup$": "creates .venv and installs torch and kinherit: the tests run in the environment it makes",
    r"^\. \.venv/bin/activate$": "the shell's own environment; the tests call kinherit in-process",
    r"^torchrun ": "two processes; the same CLI under torchrun is run by tests/train/test_distributed.py (gloo)",
    r"^accelerate launch --multi_gpu ": "needs two GPUs (the launcher's CPU path is torchrun's, tested)",
    r"^kinherit grow SRC_DIR OUT_DIR ": "a synopsis with placeholders; its options are run by tests/grow",
    r"^kinherit divergence MODEL_DIR ": "a synopsis with placeholders; run below on runs/moe-train/model",
    r"^kinherit demo$": "the full demo takes 14–19 min; its --quick twin runs in tests/demo/test_demo.py",
    r"^kinherit demo --quick$": "run by tests/demo/test_demo.py (≈1 min)",
    r"^apt-get install ": "installs OS packages (the bench corpus's sources; bench/corpus.py's refusal when one is "
    "missing is tested in tests/bench/test_where_users_train.py)",
    r"^(OMP_NUM_THREADS=1 )?(\.venv/bin/)?python (bench/|-m bench\.)": "a benchmark of minutes to hours "
    "(bench/efficiency.py's aggregation is tested in tests/bench/test_efficiency.py)",
}

PREREQUISITES = [
    # runs/small: the front page's first hour makes it (that command is then skipped); built first anyway so that
    # the blocks of one page can run alone (-k "docs/grow.md"), e.g. the grow and KI examples that use it
    "kinherit pretrain --config configs/small.yaml --out runs/small",
    # "trained with a 1024-token BPE", described in words above the cross-tokenizer example
    "kinherit pretrain --config configs/small.yaml --data.tokenizer.train_vocab_size=1024 --out runs/small-1024bpe",
]

TINY_TRAIN = [
    "--train.max_steps=2",
    "--train.eval_steps=2",
    "--train.save_steps=2",
    "--train.logging_steps=1",
    "--train.per_device_train_batch_size=8",
    "--train.per_device_eval_batch_size=32",
]
STAGED_STEPS = ["--train.max_steps=8"]  # a config with growth stages needs room for them: fractions of 8 steps


def _has_growth(argv: list[str]) -> bool:
    """Whether the command's --config has growth stages (staged training)."""
    path = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"), None)
    return path is not None and "growth" in (yaml.safe_load(Path(path).read_text()) or {})


PYTHON_SUBSTITUTIONS = [  # (page text, replacement): a 128-wide source grown to 256 × 4 instead of 1024 × 24
    ("hidden_size=1024, num_layers=24", "hidden_size=256, num_layers=4"),
]


@dataclass(frozen=True)
class Block:
    language: str
    line: int
    text: str
    page: str = "README.md"


RUNNABLE_YAML = re.compile(
    r"# (\S+\.yaml) — (kinherit .*)"
)  # a YAML block headed `# NAME.yaml — kinherit ... NAME.yaml`


def readme_blocks(text: str, page: str = "README.md") -> list[Block]:
    """Every fenced ```bash / ```python block, and every ```yaml block headed by the command that runs it (written
    to its file name, then run), with the page and the line its code starts on."""
    blocks = []
    for m in re.finditer(r"^```(bash|python|yaml)\n(.*?)^```", text, re.S | re.M):
        language, code, line = m.group(1), m.group(2), text[: m.start()].count("\n") + 2
        header = RUNNABLE_YAML.fullmatch(code.splitlines()[0])
        if language == "yaml" and header:
            blocks.append(Block("bash", line, f"cat > {header.group(1)} <<'EOF'\n{code}EOF\n{header.group(2)}\n", page))
        elif language != "yaml":
            blocks.append(Block(language, line, code, page))
    return blocks


def bash_commands(block: str) -> list[str | tuple[str, str]]:
    """A bash block's commands: continuation lines joined, comments dropped; a `cat > F <<'EOF'` here-document
    becomes (path, content)."""
    commands: list[str | tuple[str, str]] = []
    lines = block.splitlines()
    while lines:
        line = lines.pop(0)
        while line.endswith("\\") and lines:
            line = line[:-1] + " " + lines.pop(0).strip()
        heredoc = re.fullmatch(r"cat > (\S+) <<'(\w+)'", line.strip())
        if heredoc:
            body = []
            while lines and lines[0] != heredoc.group(2):
                body.append(lines.pop(0))
            lines.pop(0)
            commands.append((heredoc.group(1), "\n".join(body) + "\n"))
            continue
        words = shlex.split(line, comments=True)
        if words:
            commands.append(shlex.join(words))
    return commands


def not_run_reason(command: str) -> str | None:
    return next((reason for pattern, reason in NOT_RUN.items() if re.search(pattern, command)), None)


def tiny(argv: list[str], cache: Path) -> list[str]:
    """TINY overrides for a training command (see the module docstring)."""
    command = argv[0]
    data = [f"--data.cache_dir={cache}"]
    if not any(a.startswith("--data.sources") for a in argv):
        data.append("--data.sources=[" + ", ".join(SMALL_CORPUS) + "]")
    if command == "pretrain":
        return TINY_TRAIN + data + (STAGED_STEPS if _has_growth(argv) else [])
    if command == "cache-teacher":
        return data
    if command == "finetune":
        return TINY_TRAIN
    if command == "recycle-experiment":
        return [a.replace("--train.", "--finetune.train.") for a in TINY_TRAIN]
    return []


def page_name(path: Path) -> str:
    return str(path.relative_to(ROOT))


BLOCKS = [block for path in PAGES for block in readme_blocks(path.read_text(), page_name(path))]
ALL_TEXT = "".join(path.read_text() for path in PAGES)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A fresh folder with `configs/`, the data files the pages name, and the prerequisites built."""
    root = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "configs", root / "configs")
    text = "".join(Path(p).read_text() for p in sorted(Path(SMALL_CORPUS[0]).glob("*.py")))
    (root / "corpus.txt").write_text(text)
    (root / "shakespeare.txt").write_text(text[: len(text) // 2])
    # text no model of the pages trained on, for `kinherit eval` (another stdlib module than the training corpus)
    (root / "notes.txt").write_text((STDLIB / "textwrap.py").read_text() + (STDLIB / "string.py").read_text())
    (root / "data").mkdir()
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"content": text.split("\n\n")}), root / "data" / "train-0.parquet")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        state = {"root": root, "cache": root / "cache", "done": set()}
        for command in PREREQUISITES:
            _run(command, state)
        yield state


def _run(command: str, state: dict) -> None:
    if command in state["done"]:
        return
    argv = shlex.split(command)
    assert argv[0] == "kinherit", f"command {command!r}: add it to NOT_RUN with a reason, or teach this test to run it"
    code = main(argv[1:] + tiny(argv[1:], state["cache"]))
    assert code == 0, f"command failed (exit {code}): {command}"
    state["done"].add(command)


def test_every_page_is_covered_in_a_fixed_order():
    assert set(PAGES) == {README, *(ROOT / "docs").glob("*.md")}, "a page under docs/ is missing from PAGES (or gone)"
    assert len(set(PAGES)) == len(PAGES)
    for path in PAGES[1:]:
        assert any(b.page == page_name(path) for b in BLOCKS), f"{page_name(path)} has no runnable block"


def test_the_pages_have_blocks_and_every_exclusion_matches_one():
    commands = [c for b in BLOCKS if b.language == "bash" for c in bash_commands(b.text) if isinstance(c, str)]
    assert len(commands) >= 20 and any(b.language == "python" for b in BLOCKS)
    assert any("kinherit recycle-experiment --config experiment.yaml" in b.text for b in BLOCKS)  # a headed YAML block
    for pattern in NOT_RUN:
        assert any(re.search(pattern, c) for c in commands), (
            f"NOT_RUN entry {pattern!r} matches no command of the pages"
        )
    for old, _ in PYTHON_SUBSTITUTIONS:
        assert old in ALL_TEXT, f"substitution {old!r} no longer matches the pages"
    assert PREREQUISITES[0] in README.read_text()  # the first hour trains runs/small; the workspace builds it first


def test_bench_commands_are_not_run_in_either_form():
    for command in (
        "python bench/upcycle.py --seeds 0",
        "python -m bench.upcycle --seeds 0",
        "OMP_NUM_THREADS=1 python -m bench.xtok --seeds 0",
        ".venv/bin/python -m bench.throughput",
    ):
        assert not_run_reason(command) is not None, command
    assert not_run_reason("python -m kinherit.cli pretrain") is None


def test_bash_parsing():
    block = "# a comment\nkinherit a --x=1 \\\n    --y 2   # why\ncat > f.yaml <<'EOF'\nk: v\nEOF\nmake test\n"
    assert bash_commands(block) == ["kinherit a --x=1 --y 2", ("f.yaml", "k: v\n"), "make test"]


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: f"{b.page}:{b.language}@{b.line}")
def test_readme_block_runs(block: Block, workspace: dict):
    if block.language == "python":
        code = re.sub(r'load_config\(("[^"]+"), \[', r"load_config(\1, [*TINY, ", block.text)
        for old, new in PYTHON_SUBSTITUTIONS:
            code = code.replace(old, new)
        tiny_overrides = tiny(["pretrain"], workspace["cache"])
        exec(compile(code, f"{block.page}:{block.line}", "exec"), {"__name__": "readme", "TINY": tiny_overrides})  # noqa: S102
        return
    for command in bash_commands(block.text):
        if isinstance(command, tuple):
            path, content = command
            Path(path).write_text(content)
        elif not_run_reason(command) is None:
            _run(command, workspace)

"""Every YAML under configs/ and every YAML block in the README parses and validates, and every shipped config
runs, as its header comment says, at tiny size (2 steps, the tests' small corpus; see tests/test_readme.py's
`tiny`). A config added to configs/ without an entry in RUNS fails here, so shipped configs never rot."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from kinherit.cli import main
from kinherit.config import RunConfig, read_yaml, validate_as
from kinherit.demo.experiment import STUDENTS, ExperimentSpec, run_experiment
from kinherit.recycle.config import ExperimentConfig, FinetuneConfig
from tests.conftest import SMALL_CORPUS
from tests.test_readme import tiny

ROOT = Path(__file__).parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
DOC_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_BLOCKS = [block for page in DOC_PAGES for block in re.findall(r"```yaml\n(.*?)```", page.read_text(), re.S)]

# How each shipped config is run: the commands of its header comment (`#   kinherit ...`), after the setup
# commands it needs; "experiment" specs (bench/efficiency.py) go through run_experiment, the bench's own path.
SETUP = {
    "ki.yaml": [],  # its header trains runs/small itself
    "task.yaml": ["kinherit pretrain --config configs/small.yaml"],
    "recycle-experiment.yaml": [
        "kinherit pretrain --config configs/small.yaml",
        "kinherit pretrain --config configs/small.yaml --out runs/small-continued --model.from=runs/small/model "
        "--model.family=null --data.tokenizer.path=runs/small/model",
    ],
}
RUNS = {
    "small.yaml": "kinherit pretrain --config configs/small.yaml",
    "staged.yaml": "kinherit pretrain --config configs/staged.yaml",
    "bert-mlm.yaml": "kinherit pretrain --config configs/bert-mlm.yaml",
    "ki.yaml": "header",
    "task.yaml": "header",
    "recycle-experiment.yaml": "header",
    "efficiency.yaml": "experiment",
    "efficiency-proxy.yaml": "experiment",
}


def _schema(raw):
    if "student_model" in raw:
        return ExperimentSpec  # bench/efficiency.py, bench/sweep.py
    if "old_base" in raw:
        return ExperimentConfig  # kinherit recycle-experiment
    if "base" in raw.get("model", {}):
        return FinetuneConfig  # kinherit finetune
    return RunConfig  # kinherit pretrain


def _validate(raw):
    return validate_as(_schema(raw), raw)


def header_commands(path: Path) -> list[str]:
    """The `#   kinherit ...` lines of a config's header comment."""
    return [m.group(1).split("  #")[0].strip() for m in re.finditer(r"^#\s+(kinherit .*)$", path.read_text(), re.M)]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_validates(path):
    raw = read_yaml(path.read_text())
    assert raw == yaml.safe_load(path.read_text()) and isinstance(raw, dict) and raw
    config = _validate(raw)
    # every key written in the file survives validation (no key silently dropped or renamed)
    dumped = config.model_dump(by_alias=True)
    for section, value in raw.items():
        if isinstance(value, dict) and isinstance(dumped.get(section), dict):
            assert set(value) <= set(dumped[section]), (
                f"{path.name}: {section} keys {set(value) - set(dumped[section])}"
            )


@pytest.mark.parametrize("block", README_BLOCKS, ids=lambda b: b.splitlines()[0][:40])
def test_readme_yaml_validates(block):
    raw = read_yaml(block)
    if set(raw) == {"teacher"}:  # a `teacher:` fragment of a run config
        raw = {**read_yaml((ROOT / "configs" / "ki.yaml").read_text()), **raw}
    _validate(raw)


def test_every_shipped_config_has_a_run():
    assert sorted(RUNS) == sorted(p.name for p in CONFIGS)
    for name, how in RUNS.items():
        if how == "header":
            assert header_commands(ROOT / "configs" / name), f"{name} has no `#   kinherit ...` header line"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = tmp_path_factory.mktemp("configs")
    shutil.copytree(ROOT / "configs", root / "configs")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        yield {"root": root, "cache": root / "cache", "done": set()}


def _run(command: str, state: dict) -> None:
    if command in state["done"]:
        return
    argv = shlex.split(command)[1:]
    assert main(argv + tiny(argv, state["cache"])) == 0, f"failed: {command}"
    state["done"].add(command)


SLOW = {"efficiency.yaml", "efficiency-proxy.yaml"}  # 7 s each; run_experiment runs in tests/demo/test_demo.py


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(RUNS)], ids=str
)
def test_shipped_config_runs_at_tiny_size(name, workspace):
    how = RUNS[name]
    if how == "experiment":
        spec = ExperimentSpec.model_validate(read_yaml((ROOT / "configs" / name).read_text()))
        steps = {"max_steps": 2, "eval_steps": 2, "save_steps": 2, "logging_steps": 1, "per_device_train_batch_size": 8}
        spec = spec.model_copy(
            update={
                "data": {**spec.data, "sources": SMALL_CORPUS, "cache_dir": str(workspace["cache"])},
                "teacher_train": {**spec.teacher_train, **steps},
                "student_train": {**spec.student_train, **steps},
            }
        )
        report = run_experiment(spec, workspace["root"] / name)
        assert [r.name for r in report.results] == list(STUDENTS)
        return
    for command in SETUP.get(name, []) + (header_commands(ROOT / "configs" / name) if how == "header" else [how]):
        _run(command, workspace)

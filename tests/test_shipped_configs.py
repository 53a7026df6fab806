"""Every YAML under configs/ and every YAML block in the README must validate (shipped configs never rot)."""

import re
from pathlib import Path

import pytest

from kinherit.config import RunConfig, read_yaml, validate_as
from kinherit.recycle.config import ExperimentConfig, FinetuneConfig
from kinherit.demo.experiment import ExperimentSpec

ROOT = Path(__file__).parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
README_BLOCKS = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def _validate(raw):
    if "student_model" in raw:
        schema = ExperimentSpec  # bench/efficiency.py, bench/sweep.py
    elif "old_base" in raw:
        schema = ExperimentConfig  # kinherit recycle-experiment
    elif "base" in raw.get("model", {}):
        schema = FinetuneConfig  # kinherit finetune
    else:
        schema = RunConfig  # kinherit pretrain
    return validate_as(schema, raw)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_validates(path):
    _validate(read_yaml(path.read_text()))


@pytest.mark.parametrize("block", README_BLOCKS, ids=lambda b: b.splitlines()[0][:40])
def test_readme_yaml_validates(block):
    _validate(read_yaml(block))


def test_there_are_configs_and_examples():
    assert len(CONFIGS) >= 5 and len(README_BLOCKS) >= 3

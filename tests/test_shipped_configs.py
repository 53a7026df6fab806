"""Every YAML under configs/ must validate (litgpt's rule: shipped configs never rot)."""

from pathlib import Path

import pytest

from kinherit.config import load_config, read_yaml
from kinherit.showcase.experiment import ExperimentSpec

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_validates(path):
    raw = read_yaml(path.read_text())
    if "student_model" in raw:  # an experiment spec (bench/efficiency.py)
        ExperimentSpec.model_validate(raw)
    elif "task" in raw or "base" in raw:
        pytest.skip("fine-tuning configs are validated in tests/recycle")
    else:
        load_config(path)


def test_there_are_configs():
    assert len(CONFIGS) >= 2

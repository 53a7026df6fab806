"""Fixtures of the grow tests; the tiny models live in `tiny_models.py` (importable by the tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import kinherit.cli as cli

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import tiny_model  # noqa: E402


@pytest.fixture()
def save_tiny(tmp_path: Path):
    """Save a tiny model as an HF folder and return its path."""

    def save(family: str, name: str = "src", **kw) -> Path:
        path = tmp_path / name
        tiny_model(family, **kw).save_pretrained(path)
        return path

    return save


@pytest.fixture()
def kinherit_main():
    """The `kinherit` CLI entry point."""
    return cli.main

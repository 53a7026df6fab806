"""The installed kinherit version (`kinherit --version`, recorded in every run.json)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kinherit")
except PackageNotFoundError:  # a source checkout that was never installed
    __version__ = "unknown"

# Fresh-machine entry points. torch is installed first and pinned so pip never resolves an open
# torch range (which would pull several GB of CUDA wheels on a bare machine).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.kinherit-installed

.PHONY: setup demo test test-all lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/kinherit demo

# CI (.ci/run) runs `make test`: a lint or format finding fails it before the tests run.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# lint fixes first (import sorting), then the formatter lays out what they wrote
format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	$(PY) -m pytest

test-all: $(STAMP)
	$(PY) -m pytest -m ""

bench: $(STAMP)
	$(PY) -m bench.throughput

clean:
	rm -rf $(VENV) runs .pytest_cache

# The two commands of the README:
#   make demo   set up .venv and run the whole pipeline on the embedded default (tiny model, bundled data)
#   make test   set up .venv with the test extras, lint (ruff) and run the whole test suite
#
# For development: `make test-fast` (lint + the tests not marked slow or e2e, about five minutes),
# `make lint`, `make format`.
#
# torch goes in first, on its own: an unpinned torch on a machine without a GPU pulls a multi-GB CUDA
# build. TORCH_SPEC picks the build (the default is the CPU wheel this project is tested with); on a
# GPU machine use e.g. `make demo TORCH_SPEC=torch` or install torch into .venv yourself first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

# Offline and quiet by default for the demo and the tests: nothing here may reach a model hub,
# and none of the tools may phone home.
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 DO_NOT_TRACK=true \
	MLFLOW_DISABLE_TELEMETRY=true GX_ANALYTICS_ENABLED=False PREFECT_SERVER_ANALYTICS_ENABLED=false

.PHONY: demo test test-fast lint format setup setup-test clean

demo: $(VENV)/.installed
	$(OFFLINE) $(BIN)/llm-trainer run

# Two pytest-xdist workers, a test file each at a time (a module's fixtures stay in one session),
# each test process on one compute thread (tests/conftest.py): 13 minutes on 2 idle cores, against
# 14.7 for one session with torch's two threads and 18 for one session with one thread.
test: lint
	$(OFFLINE) $(BIN)/python -m pytest -n 2 --dist loadfile

test-fast: lint
	$(OFFLINE) $(BIN)/python -m pytest -m "not slow and not e2e" -x -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(VENV)/bin/python
	$(BIN)/python -c "import torch" 2>/dev/null || \
		$(PIP) install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.torch
	$(PIP) install -e ".[test]"
	touch $@ $(VENV)/.installed

clean:
	rm -rf .llm-trainer

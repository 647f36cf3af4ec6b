PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXAMPLES := $(BIN)/python -m pytest examples -p no:cacheprovider -q -o addopts="" -o testpaths=examples

.PHONY: demo test lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[examples]'
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(EXAMPLES)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest -n 2 -q
	$(EXAMPLES)

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/engine_overhead.py

clean:
	rm -rf $(VENV) .agentperf .mypy_cache .ruff_cache .pytest_cache

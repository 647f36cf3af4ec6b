PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXAMPLES := $(BIN)/python -m pytest examples -p no:cacheprovider -q -o addopts="" -o testpaths=examples

# The floor run: the lowest versions pyproject.toml declares (ci/floor-constraints.txt), on the
# oldest Python that requires-python admits when this machine has one (pyenv's 3.10 here).
FLOOR_VENV := .venv-floor
FLOOR_BIN := $(FLOOR_VENV)/bin
FLOOR_PYTHON ?= $(shell for p in python3.10 $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.10*/bin/python3.10; \
	do "$$p" -c "" 2>/dev/null && { echo "$$p"; break; }; done)

.PHONY: demo test test-floor ci lint typecheck bench clean

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
	ci/tty-smoke $(BIN)/python
	$(EXAMPLES)
	$(BIN)/python -m pytest -n 2 -q

$(FLOOR_BIN)/python:
	@if [ -n "$(FLOOR_PYTHON)" ]; then echo "floor run on $(FLOOR_PYTHON)"; \
	else echo "floor run on $(PYTHON): no Python 3.10 on this machine"; fi
	$(or $(FLOOR_PYTHON),$(PYTHON)) -m venv $(FLOOR_VENV)
	$(FLOOR_BIN)/python -m pip install --quiet --upgrade pip

$(FLOOR_VENV)/.installed: $(FLOOR_BIN)/python pyproject.toml ci/floor-constraints.txt
	$(FLOOR_BIN)/python -m pip install --quiet -e '.[dev]' -c ci/floor-constraints.txt
	$(FLOOR_BIN)/python -m pip check
	touch $@

# The suite against the lowest declared versions, after `make test` (which runs the newest).
test-floor: $(FLOOR_VENV)/.installed
	@$(FLOOR_BIN)/python -c "import sys, pytest, numpy; print('floor:', sys.version.split()[0], \
		'pytest', pytest.__version__, 'numpy', numpy.__version__)"
	ci/tty-smoke $(FLOOR_BIN)/python
	$(FLOOR_BIN)/python -m pytest -n 2 -x -q -p no:cacheprovider

# What CI runs (.ci/run).
ci: test test-floor

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/engine_overhead.py

clean:
	rm -rf $(VENV) $(FLOOR_VENV) .agentperf .mypy_cache .ruff_cache .pytest_cache

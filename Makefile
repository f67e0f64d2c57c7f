# Two commands a newcomer needs: `make run` and `make test`. Both set up .venv on their own.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint format clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files make re-runs instant until a requirements file changes.
$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

TOOLS := .venv-tools
$(TOOLS)/.installed: requirements-tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet -r requirements-tools.txt
	touch $@

## run: install the runtime dependencies and serve on http://127.0.0.1:8000 (APP_HOST / APP_PORT change it)
run: $(VENV)/.runtime-installed
	$(BIN)/python -m app

## test: install the test dependencies and deployment linters, lint, and run the whole suite
test: $(VENV)/.dev-installed $(TOOLS)/.installed
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest

lint: $(VENV)/.dev-installed
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .

format: $(VENV)/.dev-installed
	$(BIN)/python -m ruff format .
	$(BIN)/python -m ruff check --fix .

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache

## bench: run every benchmark in bench/ and print one table (loopback only, bounded; needs wrk)
bench: $(VENV)/.dev-installed
	$(BIN)/python -m bench.run_all

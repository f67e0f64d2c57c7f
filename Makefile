# Two commands a newcomer needs: `make run` and `make test`. Both set up .venv on their own.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Every install is held to the pins in constraints*.txt, transitive dependencies included.
PIP    := $(BIN)/python -m pip install --quiet -c constraints.txt

.PHONY: run test lint typecheck format clean bench constraints durations fuzz soak

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files make re-runs instant until a requirements or constraints file changes.
$(VENV)/.runtime-installed: requirements.txt constraints.txt | $(BIN)/python
	$(PIP) -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt constraints.txt | $(BIN)/python
	$(PIP) -r requirements-dev.txt
	touch $@

TOOLS := .venv-tools
$(TOOLS)/.installed: requirements-tools.txt constraints-tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet -c constraints-tools.txt -r requirements-tools.txt
	touch $@

## run: install the runtime dependencies and serve on http://127.0.0.1:8000 (APP_HOST / APP_PORT change it)
run: $(VENV)/.runtime-installed
	$(BIN)/python -m app

## test: install the test dependencies and deployment linters, lint, type-check, and run the whole suite
# The two virtualenvs install side by side (37 s one after the other, 22 s together here).
# compileall writes the bytecode of our own code once: with PYTHONDONTWRITEBYTECODE set, each of
# the servers and workers the suite starts would compile it again. Four test workers even on two
# cores: much of the suite waits (timeouts, drains, browsers, other processes), and more workers
# fill those waits (-n 2: 277 s, -n 3: 220-230 s, -n 4: 205 s here). Files go to the workers longest
# first, as tests/durations.json measured them (tests/scheduling.py; `make durations`). mypy
# (9 s from a cold cache) checks types beside the suite, its report printed after it; either
# failing fails the target (`make lint` gives the lint alone, at once).
test:
	@$(MAKE) --no-print-directory -j2 $(VENV)/.dev-installed $(TOOLS)/.installed
	$(BIN)/python -m compileall -q -j 0 app bench tests
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/lint-imports
	@mkdir -p build
	@$(BIN)/python -m mypy > build/mypy.log 2>&1 & typing=$$!; \
	$(BIN)/python -m pytest -n 4 --dist loadfile --no-loadscope-reorder; tests=$$?; \
	wait $$typing; typed=$$?; echo "mypy:"; cat build/mypy.log; \
	[ $$tests -eq 0 ] && [ $$typed -eq 0 ]

## lint: ruff (rules and format), mypy --strict, and the layers of app/ (import-linter)
lint: $(VENV)/.dev-installed
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m mypy
	$(BIN)/lint-imports

typecheck: $(VENV)/.dev-installed
	$(BIN)/python -m mypy

format: $(VENV)/.dev-installed
	$(BIN)/python -m ruff format .
	$(BIN)/python -m ruff check --fix .

## durations: run the suite as `make test` does and write each test file's time to tests/durations.json
durations: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -n 4 --dist loadfile --no-loadscope-reorder --store-durations -p no:cacheprovider

## fuzz: schemathesis, every check, a random seed and more examples, against a fresh server
fuzz: $(VENV)/.dev-installed
	FUZZ_SEED=random FUZZ_EXAMPLES=200 $(BIN)/python -m pytest tests/contract/test_schemathesis.py -p no:cacheprovider

## soak: the load tests at full size (10,000 events across two replicas, a burst of 10,000
## requests, 60 s of mixed load); `make test` runs them smaller
soak: $(VENV)/.dev-installed
	SOAK=1 $(BIN)/python -m pytest -m soak -p no:cacheprovider

## constraints: re-pin every transitive dependency after a requirements file changed
constraints: $(VENV)/.dev-installed $(TOOLS)/.installed
	{ sed -n '1,3p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^resilient-api'; } > constraints.tmp && mv constraints.tmp constraints.txt
	{ sed -n '1p' constraints-tools.txt; $(TOOLS)/bin/python -m pip freeze; } > constraints-tools.tmp && mv constraints-tools.tmp constraints-tools.txt

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache .mypy_cache build *.egg-info

## bench: run every benchmark in bench/ and print one table (loopback only, bounded; needs wrk)
bench: $(VENV)/.dev-installed
	$(BIN)/python -m bench.run_all

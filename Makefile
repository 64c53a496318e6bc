# Local development. Needs only Python 3.11+ and GNU make: `make test`, `make demo`.
SHELL := /bin/bash

# The first of these that runs and is 3.11+ (pyenv shims may exist for absent versions).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 \
	&& { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Test processes for `make test` (pytest-xdist): the real-stack tests mostly wait on servers,
# so more processes than cores still help; each has its own Temporal dev server and database.
TEST_PROCESSES ?= 4
WORKERS ?= 1
MOCK_REVIEW_SECONDS ?= 8

.DEFAULT_GOAL := help
CHROMIUM ?= /usr/bin/chromium
.PHONY: help venv install browser test test-fast interleavings api-fuzz openapi demo up docs lint format clean distclean

help:
	@echo "make install    create .venv and install the project with its dev kit and test tools"
	@echo "make test       run the whole test suite in \$$TEST_PROCESSES processes (PYTEST_ARGS=...);"
	@echo "                installs Debian's chromium for the browser tests when missing (root)"
	@echo "make test-fast  the unit and workflow tests only (no dev server, mock DSP or browser)"
	@echo "make interleavings  the randomised interleaving test, long profile (HYPOTHESIS_PROFILE=long)"
	@echo "make api-fuzz   Schemathesis against the console on the stack, long run (API_FUZZ_MAX_EXAMPLES,"
	@echo "                API_FUZZ_SEED); the test suite runs a short one with a fixed seed"
	@echo "make openapi    write the API's OpenAPI document to docs/reference/openapi.json (see"
	@echo "                docs/reference/api-compatibility.md before committing a change to it)"
	@echo "make up         python dev.py up --workers \$$WORKERS (Ctrl-C stops it)"
	@echo "make demo       bring the stack up, submit examples/demo.json, wait, stop"
	@echo "make docs       build the documentation site into build/site (mkdocs --strict, offline)"
	@echo "make lint       ruff check, ruff format --check, and mypy --strict on the service"
	@echo "make clean      remove caches and .dev/ (dev state); distclean also .venv"

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "no Python 3.11+ found; set PYTHON=/path/to/python3.11" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "Python 3.11+ is needed, $(PYTHON) is $$($(PYTHON) --version 2>&1);" \
			"set PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Reinstalls only when pyproject.toml changes (the stamp is older than it).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev,test,docs]'
	@touch $@

venv install: $(STAMP)

# The browser tests drive Debian's chromium (Playwright never downloads a browser here).
browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian's chromium for the browser tests (apt-get)"; \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq chromium >/dev/null; } || \
				echo "WARNING: chromium could not be installed: the browser tests fail in CI" >&2; \
		else \
			echo "WARNING: no $(CHROMIUM) (apt-get install chromium, as root): the browser" \
				"tests skip, or fail with CI=true" >&2; \
		fi; \
	fi

# --dist loadgroup: tests marked xdist_group(name) run in one process, one after another.
test: $(STAMP) browser
	$(BIN)/pytest -q -n $(TEST_PROCESSES) --dist loadgroup $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/pytest -q -n $(TEST_PROCESSES) --dist loadgroup $(PYTEST_ARGS) tests/unit tests/workflows

# Many more drawn schedules than the CI profile `make test` runs (a few minutes).
interleavings: $(STAMP)
	HYPOTHESIS_PROFILE=long $(BIN)/pytest -q tests/workflows/test_interleavings.py \
		--hypothesis-show-statistics $(PYTEST_ARGS)

# Many more generated requests than the suite's fixed-seed run (several minutes).
API_FUZZ_MAX_EXAMPLES ?= 300
API_FUZZ_SEED ?= $(shell date +%s)
api-fuzz: $(STAMP)
	API_FUZZ_MAX_EXAMPLES=$(API_FUZZ_MAX_EXAMPLES) API_FUZZ_SEED=$(API_FUZZ_SEED) API_FUZZ_TIMEOUT=3600 \
		$(BIN)/pytest -q tests/integration/test_api_contract_fuzz.py $(PYTEST_ARGS)

openapi: $(STAMP)
	$(BIN)/python -c 'from dsp_integration.console.apidocs import main; main()'

up: $(STAMP)
	$(BIN)/python dev.py up --workers $(WORKERS)

demo: $(STAMP)
	MOCK_REVIEW_SECONDS=$(MOCK_REVIEW_SECONDS) $(BIN)/python dev.py demo examples/demo.json --workers 2

# Strict: a broken link, anchor or generated part fails the build (tests/unit/test_docs_site.py
# builds it in `make test` too).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	@if [ -f .dev/stack.json ] && kill -0 "$$(sed -n 's/^  "pid": \([0-9]*\),$$/\1/p' .dev/stack.json)" 2>/dev/null; then \
		echo "a dev.py up is running (.dev/stack.json): stop it before make clean" >&2; exit 1; fi
	rm -rf .dev .pytest_cache .ruff_cache .mypy_cache build devkit/bench/out
	rm -rf *.egg-info
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

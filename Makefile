# Targets shared by humans and CI (.ci/run calls `make test`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint fmt test-sqlite test-postgres bench bench-compare clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Start the embedded server on :8080 (SQLite + in-process bus, core pack, default user).
run: $(STAMP)
	$(BIN)/attune server

## Lint, type-check, then the whole suite on SQLite+memory and on PostgreSQL+RabbitMQ.
test: lint test-sqlite test-postgres

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/mypy bench

test-sqlite: $(STAMP)
	ATTUNE_TEST_BACKEND=sqlite $(BIN)/pytest

test-postgres: $(STAMP)
	ATTUNE_TEST_BACKEND=postgres $(BIN)/pytest

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

## W1–W4, the Python action and idle RSS on a fresh embedded server (docs/performance.md).
bench: $(STAMP)
	$(BIN)/python bench/run.py

## The same beside n8n, interleaved (needs ATTUNE_BENCH_N8N_HOME and ATTUNE_BENCH_N8N_NODE).
bench-compare: $(STAMP)
	$(BIN)/python bench/compare.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache

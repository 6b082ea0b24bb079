# Targets shared by humans and CI (.ci/run calls `make test`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint fmt test-sqlite test-postgres bench clean

# Compatible ranges in pyproject.toml, exact versions from constraints.txt (CI installs the same).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
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

test-sqlite: $(STAMP)
	ATTUNE_TEST_BACKEND=sqlite $(BIN)/pytest

test-postgres: $(STAMP)
	ATTUNE_TEST_BACKEND=postgres $(BIN)/pytest

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache

# Targets shared by humans and CI (.ci/run calls `make test`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run run-scaled test lint fmt fuzz test-sqlite test-postgres test-lanes test-browser web web-lint wheel bench bench-compare clean

# Compatible ranges in pyproject.toml, exact versions from constraints.txt (CI installs the same).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# -- web UI (web/, docs/web-ui.md) ------------------------------------------------------------------
# The production build lands in src/attune/api/ui_dist (git-ignored, shipped in the wheel). Each step
# re-runs only when its inputs changed: npm ci when the lock file did, the client types when the API
# code did, the build when the web sources did.
UI_DIST := src/attune/api/ui_dist
WEB_DEPS := web/node_modules/.installed-stamp
WEB_TYPES := web/src/api/schema.d.ts
WEB_STAMP := $(UI_DIST)/.build-stamp
API_SOURCES := $(shell find src/attune/api -name '*.py' 2>/dev/null)
WEB_SOURCES := $(filter-out $(WEB_TYPES),$(shell find web/src web/public -type f 2>/dev/null)) \
	web/index.html web/vite.config.ts web/tailwind.config.js web/postcss.config.js web/tsconfig.json

$(WEB_DEPS): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

# Client types from the OpenAPI document, dumped by Python from create_app (no server needed).
$(WEB_TYPES): $(STAMP) $(WEB_DEPS) $(API_SOURCES) web/scripts/dump_openapi.py
	$(BIN)/python web/scripts/dump_openapi.py > web/openapi.json
	cd web && npx openapi-typescript openapi.json -o src/api/schema.d.ts

$(WEB_STAMP): $(WEB_DEPS) $(WEB_TYPES) $(WEB_SOURCES)
	cd web && npx vite build
	touch $@

## Build the web UI when its sources changed.
web: $(WEB_STAMP)

## ESLint and the TypeScript checker on web/.
web-lint: $(WEB_DEPS) $(WEB_TYPES)
	cd web && npm run lint && npx tsc --noEmit

## A wheel (and sdist) in dist/ that contains the built UI: pip users need no Node.
wheel: web
	$(BIN)/pip install --quiet build
	$(BIN)/python -m build

## Start the embedded server on :8080 (SQLite + in-process bus, core pack, default user) with the UI at /.
run: $(STAMP) web
	$(BIN)/attune server

## The scaled deployment on the local PostgreSQL and RabbitMQ: api, executor x2, worker x2, sensor and
## notifier as separate processes (docs/operations.md "Running the scaled deployment"); Ctrl-C stops all.
run-scaled: $(STAMP) web
	$(BIN)/python -m attune.scaled

## Lint and type-check, the whole suite on SQLite+memory and on PostgreSQL+RabbitMQ, the API fuzz.
## Two lanes side by side (each output line prefixed with its lane): lint, web-lint, the SQLite pass
## and the fuzz in one; the PostgreSQL pass, the longest, in the other.
test: test-lanes

## The lanes share nothing (own databases, bus prefixes, ports, process cookies) and spend most of
## their time waiting on servers, so together they take little longer than the slower one. A lane
## keeps going after a failure (-k) so one run reports everything; fails when either lane failed.
test-lanes: $(STAMP) web
	@mkdir -p .test-logs
	@{ $(MAKE) --no-print-directory -k lint web-lint test-sqlite fuzz; echo $$? > .test-logs/sqlite.rc; } 2>&1 \
		| tee .test-logs/sqlite.log | sed -u 's/^/[sqlite] /' & \
	{ $(MAKE) --no-print-directory test-postgres; echo $$? > .test-logs/postgres.rc; } 2>&1 \
		| tee .test-logs/postgres.log | sed -u 's/^/[postgres] /' & \
	wait; \
	rs=$$(cat .test-logs/sqlite.rc); rp=$$(cat .test-logs/postgres.rc); \
	echo "lint, SQLite pass, fuzz: exit $$rs — $$(grep -E ' (passed|failed)' .test-logs/sqlite.log | tail -n 2 | tr '\n' ' ')"; \
	echo "PostgreSQL pass: exit $$rp — $$(grep -E ' (passed|failed)' .test-logs/postgres.log | tail -n 1)"; \
	test "$$rs" = 0 && test "$$rp" = 0

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/mypy bench

# The browser tests (tests/browser) drive the UI against an embedded server; they test the UI, not
# the backend pair, so they run in the SQLite pass only and the PostgreSQL pass leaves them out.
test-sqlite: $(STAMP) web
	ATTUNE_TEST_BACKEND=sqlite $(BIN)/pytest --durations=25

test-postgres: $(STAMP)
	ATTUNE_TEST_BACKEND=postgres $(BIN)/pytest --ignore=tests/browser --durations=25

## Only the browser tests (Playwright + Debian's chromium).
test-browser: $(STAMP) web
	ATTUNE_TEST_BACKEND=sqlite $(BIN)/pytest tests/browser

## schemathesis against an embedded server: every OpenAPI operation, no 5xx, only declared status codes.
.PHONY: fuzz
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.run

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
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache $(UI_DIST) web/node_modules web/openapi.json $(WEB_TYPES)

# The two commands of the README: `make run` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test check lint typecheck pytest bench bench-profile lock clean

# The pinned versions of requirements-dev.lock (test, lint and e2e extras), then the package.
$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# Re-resolve both lock files from pyproject.toml: requirements.lock (the image's runtime
# dependencies, with hashes) and requirements-dev.lock (everything a developer and CI use).
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-manylinux_2_28
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml $(LOCK_TARGET) --generate-hashes -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra test --extra lint --extra e2e $(LOCK_TARGET) \
	  -o requirements-dev.lock

# Development defaults: any browser origin, the public CDS Hooks Sandbox as a trusted client,
# and the operator's pages (preview, analytics) on.
run: $(STAMP)
	CDS_PAGES="$${CDS_PAGES-on}" \
	CDS_CORS_ORIGINS="$${CDS_CORS_ORIGINS-*}" \
	CDS_TRUSTED_CLIENTS_FILE="$${CDS_TRUSTED_CLIENTS_FILE-examples/trusted-clients.sandbox.yaml}" \
	$(BIN)/cds serve --host $(HOST) --port $(PORT)

test: lint typecheck pytest

# The developer loop: lint, types and the in-process tests on every core; no servers, browser,
# PostgreSQL or whole-population run (those stay in `make test`). Bytecode is written even where
# PYTHONDONTWRITEBYTECODE is set: without its cache pytest re-rewrites the asserts of every test
# module and plugin package in each worker, every run (about 5 s of CPU per process).
check: lint typecheck
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -q -n auto -m "not e2e and not browser and not postgres and not slow"

lint: $(STAMP)
	$(BIN)/ruff check cds tests bench
	$(BIN)/ruff format --check cds tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

# Service vs a bare FastAPI ceiling on loopback; prints the table and writes it to the untracked
# bench/results/benchmarks.md; `make bench UPDATE_DOCS=1` refreshes the tracked docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python -m bench.run $(if $(UPDATE_DOCS),--out docs/benchmarks.md)

# One large request in-process under cProfile: where the time goes.
bench-profile: $(STAMP)
	$(BIN)/python -m bench.profile

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# Switchyard. `make dev` runs the whole system locally; `make test` runs every test.
# Both create the virtualenv and install what they need on first use.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONTEXT_REQS := $(wildcard functions/*/requirements.txt)

.PHONY: help venv check-tools dev test test-unit test-integration test-e2e lint fmt migrate seed bench docs context setup clean

help:
	@echo "make dev      run every deployment locally on the Pub/Sub and Firestore emulators"
	@echo "make test     every test: tests/unit, tests/integration (emulators, PostgreSQL),"
	@echo "              tests/infra (Terraform, deploy scripts), tests/e2e (the whole stack),"
	@echo "              tests/browser (the console in headless Chromium)"
	@echo "make lint     ruff (lint, format), mypy, terraform fmt"
	@echo "make migrate  run every context's migrations (+ bootstrap) on the configured database"
	@echo "make seed     load demo data through the gateway of a running 'make dev'"
	@echo "make bench    measure and write docs/benchmarks.md"
	@echo "make docs     regenerate README.md's catalogue, configuration table and schedule line"
	@echo "make package | plan ENV= | apply ENV= | deploy [DEPLOYMENT=] [DRY_RUN=1] | validate"

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt $(CONTEXT_REQS)
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or newer" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "error: Python 3.11+ is required ($(PYTHON) is $$($(PYTHON) -V))" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { echo "error: cannot create a virtualenv (on Debian: apt-get install python3-venv)" >&2; exit 1; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt $(foreach f,$(CONTEXT_REQS),-r $(f))
	@touch $@

check-tools: venv
	@$(PY) -m emulators check

dev: check-tools
	$(PY) -m emulators

setup:
	@bash tools/setup.sh

test: setup check-tools
	$(PY) -m pytest

test-unit: venv
	$(PY) -m pytest tests/unit

test-integration: setup check-tools
	$(PY) -m pytest tests/integration tests/infra

test-e2e: setup check-tools
	$(PY) -m pytest tests/e2e

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	@command -v terraform >/dev/null 2>&1 && terraform fmt -check -recursive infra || echo "terraform not installed: skipped terraform fmt"

fmt: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	@command -v terraform >/dev/null 2>&1 && terraform fmt -recursive infra || true

migrate: venv
	$(PY) -m shared.migrate

seed: venv
	$(PY) tools/seed.py

docs: venv
	$(PY) tools/catalogue.py

context: venv
	@test -n "$(NAME)" || { echo "usage: make context NAME=<context>  (a lower-case word)" >&2; exit 2; }
	$(PY) tools/scaffold.py $(NAME)

bench: setup check-tools
	$(PY) tools/bench.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache test-output

-include infra/infra.mk

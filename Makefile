# Two commands on a fresh machine: `make demo` and `make test`. Both set up what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# pytest-xdist workers for `make test` (0: one process). Most of the suite's time is spent waiting for
# brokers, Prefect servers and timeouts, so two workers halve it even on two cores.
TEST_WORKERS ?= 2

.PHONY: install demo test test-fast lint typecheck bench eval clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "newswire needs Python >= 3.11")'
	@if ! $(PYTHON) -m venv --help >/dev/null 2>&1 || ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
		echo "installing python3-venv (apt-get)"; \
		(apt-get update -qq && apt-get install -y -qq python3-venv) || { echo "need python3-venv"; exit 1; }; \
	fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) demo/demo.py

test: $(STAMP)
	@bash infra/install_postgres.sh  # PostgreSQL-backed state tests (skipped when it cannot be installed)
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not integration and not corpus"

lint: $(STAMP)
	$(VENV)/bin/ruff check newswire connectors processors flows tests eval benchmarks demo

typecheck: $(STAMP)
	bash infra/typecheck.sh

eval: $(STAMP)
	$(PY) benchmarks/extraction_eval.py
	$(PY) eval/tagging_eval.py

clean:
	rm -rf $(VENV) .demo build *.egg-info .pytest_cache .mypy_cache

# Two entry points that work on a fresh machine with Python 3.11+:
#   make demo   sets up .venv and runs the agent once against the embedded sandbox
#   make test   sets up .venv with the dev extra and runs ruff, mypy and pytest
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
CONSTRAINTS := constraints.txt

.PHONY: demo test lint typecheck pytest install install-dev clean bench

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "crm-health-agent needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(PIP) install --quiet -c $(CONSTRAINTS) -e .
	@touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/health-agent demo

lint: install-dev
	$(BIN)/ruff check .

typecheck: install-dev
	$(BIN)/mypy

pytest: install-dev
	$(BIN)/pytest

test: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

bench: install-dev
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[bench]"
	@echo "Benchmarks: $(BIN)/python -m bench.<name> --help   (pull, score, writeback, sandbox_latency)"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache data/demo

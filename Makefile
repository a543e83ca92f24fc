# dotmac-netd — the two commands a new user needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: help install run test lint unit bench clean proto

help:
	@echo "make run    create .venv, install, migrate, run every daemon on the embedded stores"
	@echo "make test   lint (ruff, mypy --strict) and the whole test suite"
	@echo "make lint   ruff and mypy only"
	@echo "make bench  every benchmark under benchmarks/"
	@echo "make proto  regenerate daemons/nbi/gen from proto/netd/v1 (commit both)"
	@echo "make clean  remove .venv and the state directory var/"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: install
	$(BIN)/netd migrate
	@echo "starting dotmac-netd; API, /health/ready and /metrics on http://127.0.0.1:8080 by default (Ctrl-C stops)"
	exec $(BIN)/netd up

lint: install
	$(BIN)/ruff check daemons tests benchmarks proto
	$(BIN)/ruff format --check daemons tests benchmarks proto
	$(BIN)/mypy

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

unit: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

proto: install
	$(BIN)/python proto/generate.py

bench: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) var

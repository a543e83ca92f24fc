# dotmac-netd — the two commands a new user needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUM    := $(shell cksum pyproject.toml | cut -d' ' -f1)
STAMP  := $(VENV)/.installed-dev-$(SUM)
RUN_STAMP := $(VENV)/.installed-run-$(SUM)
PYTEST_ARGS ?=
# make test runs pytest in TEST_JOBS worker processes (pytest-xdist), each with its own
# embedded PostgreSQL and Redis; a test file stays on one worker (its module fixtures start
# once). TEST_JOBS=0 runs the suite serially, in one process.
TEST_JOBS ?= 2
XDIST := -n $(TEST_JOBS) --dist loadfile
FUZZ_TIME ?= 300

.PHONY: help install run test lint unit bench clean proto fuzz

help:
	@echo "make run    create .venv, install, migrate, run every daemon on the embedded stores"
	@echo "make test   lint (ruff, mypy --strict) and the whole test suite, in TEST_JOBS=2"
	@echo "            processes (TEST_JOBS=0: serially)"
	@echo "make lint   ruff and mypy only"
	@echo "make bench  every benchmark under benchmarks/"
	@echo "make fuzz   atheris on the RADIUS and CWMP decoders, FUZZ_TIME=300 s each"
	@echo "make proto  regenerate daemons/nbi/gen from proto/netd/v1 (commit both)"
	@echo "make clean  remove .venv and the state directory var/"

# make run installs what netd needs at run time; make test (and lint, unit, ...) the dev
# tools too. Either stamp is remade when pyproject.toml changes.
$(RUN_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@rm -f $(VENV)/.installed-run-* && touch $@

# fakenos, a vendor-like CLI peer of tests/devices, is installed without its dependencies: its
# metadata pins paramiko<=4.0, but it runs on the paramiko netd installs (5.x), the one the
# tests must run on.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		'fakenos==1.2.1' 'detect==2020.12.*'
	@rm -f $(VENV)/.installed-dev-* $(VENV)/.installed-run-* && touch $@ $(RUN_STAMP)

install: $(STAMP)

# make run's own instance: config/dev.toml keeps its state in ./var/netd. For admin commands
# on it: export NETD_CONFIG=$$PWD/config/dev.toml, then .venv/bin/netd ...
DEV_CONFIG ?= config/dev.toml

run: $(RUN_STAMP)
	$(BIN)/netd --config $(DEV_CONFIG) migrate
	@echo "starting dotmac-netd; API, /health/ready and /metrics on http://127.0.0.1:8080 by default (Ctrl-C stops)"
	exec $(BIN)/netd --config $(DEV_CONFIG) up --take-terminal

lint: install
	$(BIN)/ruff check daemons tests benchmarks proto fuzz contrib
	$(BIN)/ruff format --check daemons tests benchmarks proto fuzz contrib
	$(BIN)/mypy

test: lint
	$(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

unit: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

proto: install
	$(BIN)/python proto/generate.py

# Coverage-guided fuzzing (atheris): the corpora grow in var/fuzz/, crashes land there too
# (a crash stops the target and fails make). Seeds: fuzz/corpus/ (fuzz/make_seeds.py).
fuzz: install
	@mkdir -p var/fuzz/radius var/fuzz/cwmp
	$(BIN)/python fuzz/fuzz_radius.py var/fuzz/radius fuzz/corpus/radius -max_len=4096 \
		-max_total_time=$(FUZZ_TIME) -print_final_stats=1 -artifact_prefix=var/fuzz/radius-
	$(BIN)/python fuzz/fuzz_cwmp.py var/fuzz/cwmp fuzz/corpus/cwmp -dict=fuzz/cwmp.dict \
		-max_len=16384 -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
		-artifact_prefix=var/fuzz/cwmp-

bench: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) var

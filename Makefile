# mall-connector: two commands on a fresh machine with Python 3.11+: `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-fast chaos bench audit clean replicas

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'  # setuptools' default (lenient) editable mode: 'compat' is deprecated
	touch $(STAMP)

install: $(STAMP)

## make demo: the embedded default (local MALL sandbox + CSV shop + SQLite + daemon), ends by itself
demo: $(STAMP)
	$(BIN)/mall-connector demo

## make test: the whole suite, including a small seeded chaos run and the fuzz/property tests
test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

## make test-fast: everything but the system tests (daemon subprocesses, chaos, demo, packaging)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not system" $(PYTEST_ARGS)

## make chaos: the full-size seeded chaos run (kills, faults, duplicate/lost webhooks); writes figures
chaos: $(STAMP)
	$(BIN)/python -m tests.system.chaos.run --size full --seed 20261126 --report docs/reliability.md

## make replicas: the 3-replica SIGKILL run on one PostgreSQL server at the issue's size (300 shop changes,
## 100 webhooks); `make test` runs a small size (CI=true: this size)
replicas: $(STAMP)
	MALL_CONNECTOR_REPLICAS_SIZE=full $(BIN)/python -m pytest -q tests/system/replicas

## make bench: benchmarks against the bare stack; writes docs/performance.md
bench: $(STAMP)
	$(BIN)/python -m bench.run --out docs/performance.md

## make bench-idle: the 10-minute idle run of `mall-connector run` alone (RSS samples, no growth); make bench includes it
.PHONY: bench-idle
bench-idle: $(STAMP)
	$(BIN)/python -m bench.idle --idle 600

## make audit: known vulnerabilities in the installed dependencies
audit: $(STAMP)
	$(BIN)/python -m pip install --quiet 'pip-audit>=2.7,<3'
	$(BIN)/pip-audit --strict --progress-spinner off

.PHONY: console-screenshots
## make console-screenshots: re-take the screenshots in docs/console.md (headless Chromium, the real daemon)
console-screenshots: $(STAMP)
	CONSOLE_SCREENSHOTS=docs/console $(BIN)/python -m pytest -q tests/system/console/test_browser.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis

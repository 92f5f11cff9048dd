# Two commands on a fresh machine:  `make demo` (run the daemon on the built-in simulated network)
# and `make test` (lint, type-check and the whole test suite against real peers).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)

.PHONY: setup system-deps demo run test lint typecheck unit bench bench-snmp bench-incidents bench-page-timing bench-slo bench-security bench-console bench-detection bench-flows clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

system-deps:
	./scripts/system-deps.sh

demo: setup
	$(BIN)/monitor demo

run: setup
	$(BIN)/monitor run --config config/monitor.yml

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -m "not slow"

test: system-deps setup lint typecheck
	$(BIN)/pytest

bench: system-deps setup
	$(BIN)/python -m bench.run

bench-snmp: system-deps setup
	$(BIN)/python -m bench.snmp_bench

bench-console: system-deps setup
	$(BIN)/python -m bench.console_bench

bench-security: system-deps setup
	$(BIN)/python -m bench.security_bench

bench-detection: system-deps setup
	$(BIN)/python -m bench.detection_bench

bench-incidents: setup
	$(BIN)/python -m bench.incidents_bench

bench-page-timing: setup
	$(BIN)/python -m bench.page_timing_bench

bench-slo: setup
	$(BIN)/python -m bench.slo_bench

bench-flows: system-deps setup
	$(BIN)/python -m bench.flow_bench --version 10
	$(BIN)/python -m bench.flow_bench --version 9

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

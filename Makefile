# Two entry points (see README): `make demo` runs the main job, `make test` runs every check
# (what CI runs). `make check` is the edit loop: lint, types and the tests not marked slow.
# All create or update the virtual environment first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Numba's compiled-kernel cache stays inside the project (writable, shared by runs).
export NUMBA_CACHE_DIR := $(CURDIR)/.numba_cache
# headless figures for the checks only: notebook kernels started by the tests drop it
TEST_ENV := MPLBACKEND=Agg

.PHONY: demo test check install lint typecheck bench clean browser

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m qt_backtest.demo

# the report test opens reports in a real browser
browser:
	sh scripts/ensure-chromium.sh

# two test processes (pytest-xdist); a module's tests stay together in one
PYTEST_PARALLEL := -n 2 --dist loadfile

test: $(STAMP) browser lint typecheck
	$(TEST_ENV) $(BIN)/python -m pytest $(PYTEST_PARALLEL)

check: $(STAMP) lint typecheck
	$(TEST_ENV) $(BIN)/python -m pytest -m "not slow" -q $(PYTEST_PARALLEL)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_indicators.py
	$(BIN)/python benchmarks/bench_replay.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_sweep_patterns.py
	$(BIN)/python benchmarks/bench_inference.py
	$(BIN)/python benchmarks/bench_monitor.py
	$(BIN)/python benchmarks/bench_outcomes.py
	$(BIN)/python benchmarks/bench_journal.py

clean:
	rm -rf $(VENV) .numba_cache .pytest_cache .hypothesis

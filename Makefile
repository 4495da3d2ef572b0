# The two commands of the README: `make run` (default study) and `make test` (every test, as CI
# runs it). `make test-fast` leaves out the tests marked slow; `make test-quick` runs only the
# pure-Python ones (marked quick: rules, planning, stores, reports); `make lint` runs ruff.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUT ?= runs/fig1-cpu
LINTED := parity_jax tests benchmarks experiments

.PHONY: run test test-fast test-quick lint install clean

$(BIN)/parity-jax: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/parity-jax

run: install
	$(BIN)/python experiments/fig1_cpu.py --out $(OUT)

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

test-quick: install
	$(BIN)/python -m pytest -q -m "quick and not slow"

lint: install
	$(BIN)/ruff check $(LINTED)

clean:
	rm -rf $(VENV) runs

# The two commands of the README: `make run` (default study) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUT ?= runs/fig1-cpu

.PHONY: run test install clean

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

clean:
	rm -rf $(VENV) runs

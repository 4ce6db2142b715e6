# Two entry points for a newcomer: `make demo` and `make test`.
# Each creates .venv when it is missing and reuses it otherwise.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench clean try-postgres

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,postgres]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/aihd run sample_manifests/demo.yaml --sandbox --collect
	$(BIN)/aihd run sample_manifests/demo-v3.yaml --sandbox --collect
	$(BIN)/aihd review sample_manifests/demo.yaml

lint: $(STAMP)
	$(BIN)/ruff check pipeline tests $(wildcard bench)
	$(BIN)/ruff format --check pipeline tests $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy --strict pipeline

pytest: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck pytest

# A throwaway PostgreSQL (initdb/pg_ctl) in a temporary folder, for the "Several machines"
# ledger; Enter stops it and removes the folder.
try-postgres: $(STAMP)
	$(BIN)/python -m tests.pg_server

bench: $(STAMP)
	$(BIN)/python -m bench all

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

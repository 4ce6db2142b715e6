# Two entry points for a newcomer: `make demo` and `make test` (`make check` while working).
# Each creates .venv when it is missing and reuses it otherwise.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck pytest pytest-quick durations bench clean try-postgres

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# An editable install compiles no bytecode, and where PYTHONDONTWRITEBYTECODE is set none is
# ever written: every `aihd` would compile its ~75 modules again (0.58 G instructions, a third
# of a re-run over 2,000 done photos). `pip install aihd` compiles them for a user; so does this.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,postgres]'
	$(BIN)/python -m compileall -q pipeline
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/aihd run sample_manifests/demo.yaml --sandbox --collect
	$(BIN)/aihd run sample_manifests/demo-v3.yaml --sandbox --collect
	$(BIN)/aihd review sample_manifests/demo.yaml
	@echo "Try the review desk (decisions straight into the demo's ledger; Ctrl-C stops it):"
	@echo "  $(BIN)/aihd review sample_manifests/demo.yaml --serve"

lint: $(STAMP)
	$(BIN)/ruff check pipeline tests $(wildcard bench)
	$(BIN)/ruff format --check pipeline tests $(wildcard bench)

# bench/ too (and the test helpers it imports): a helper renamed in tests/ broke the docs'
# screenshot commands unseen.
typecheck: $(STAMP)
	$(BIN)/mypy --strict pipeline $(wildcard bench)

# The tests mostly wait (on loopback servers, windows, processes: ~20% of their time is CPU),
# so six pytest-xdist workers share the 2 cores (a clean clone's `make test`: 4:39 with six,
# 4:59 with four, 10% more CPU; `make check` 1:30 against 2:00); PYTEST_WORKERS=0 for one
# process. Tests are handed out one at a time, the longest first (tests/conftest.py), so no
# worker is left with a long tail; the browser tests, and each module whose tests share a
# fixture, together on one worker.
PYTEST_WORKERS ?= 6
PYTEST_XDIST = -n $(PYTEST_WORKERS) --dist loadgroup
# The suite keeps its bytecode (__pycache__, git-ignored) even where the shell says
# PYTHONDONTWRITEBYTECODE: without it every pytest process compiled the tests and rewrote their
# asserts again, ~8 s of CPU each, once per worker and run.
unexport PYTHONDONTWRITEBYTECODE

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_XDIST)

# Each test's seconds into tests/durations.json: the longest are handed out first (conftest.py).
# Worth running again when tests were added or got much faster or slower.
durations: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_XDIST) --record-durations

# The tests not marked slow (kill tests, hostile servers, big files): a developer's loop.
pytest-quick: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_XDIST) -m "not slow"

# ruff first (seconds); then mypy beside the tests, as mypy wants a core for a while and the
# tests mostly wait. A failure in either fails the target, once both have ended.
test: lint
	@$(MAKE) --no-print-directory -j2 typecheck pytest

check: lint
	@$(MAKE) --no-print-directory -j2 typecheck pytest-quick

# A throwaway PostgreSQL (initdb/pg_ctl) in a temporary folder, for the "Several machines"
# ledger; Enter stops it and removes the folder.
try-postgres: $(STAMP)
	$(BIN)/python -m tests.pg_server

# The code as it stands, compiled as an install compiles it (see $(STAMP)).
bench: $(STAMP)
	$(BIN)/python -m compileall -q pipeline
	$(BIN)/python -m bench all

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

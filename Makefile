# Two entry points a fresh machine needs (see README):
#   make demo  - set up, then run the main job on the bundled sample documents
#   make test  - set up, then lint, type-check and run the whole test suite
# Every install comes from uv.lock: `uv sync --locked` refuses to install when the lock no longer
# matches pyproject.toml, and installs exactly the locked versions (with their hashes) otherwise.
# uv itself is bootstrapped from requirements/bootstrap.txt, pinned by hash.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out
UV := $(BIN)/uv
# uv syncs the project environment in $(VENV), with the interpreter that created it.
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON_DOWNLOADS := never

.PHONY: setup demo test lint typecheck lockcheck pytest bench lock lock-upgrade clean

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r requirements/bootstrap.txt

# Re-sync when the project metadata or the lock changes. uv stays: the dev extra locks it too.
$(VENV)/.installed: pyproject.toml uv.lock requirements/bootstrap.txt | $(UV)
	$(UV) sync --locked --extra dev --python $(BIN)/python
	$(UV) pip check --python $(BIN)/python
	touch $@

setup: $(VENV)/.installed

demo: setup
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/demo.sh "$(OUT)"

# Fails when pyproject.toml changed without `make lock`.
lockcheck: | $(UV)
	$(UV) lock --check

lint: setup
	$(BIN)/ruff check service operator tests bench
	$(BIN)/ruff format --check service operator tests bench

typecheck: setup
	$(BIN)/mypy service/percolate_reading operator/percolate_operator

# Two pytest-xdist workers: the suite waits on servers and subprocesses about half the time, so a
# second worker keeps both cores busy. Each tier that shares one heavy resource (the image tier's
# buildah store, the real control plane) stays whole on one worker (tests/conftest.py).
# PYTEST_WORKERS=0 runs everything in one process.
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS))

# Tests marked `timing` compare latencies, which a test beside them on the other worker would
# skew: they run in a second, serial phase. Exit 5 (nothing selected, as when PYTEST_ARGS names a
# subset without such tests) is not a failure of either phase.
pytest: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "not timing" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -m timing $(PYTEST_ARGS) || [ $$? -eq 5 ]

test: lockcheck lint typecheck pytest

bench: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python bench/parse_bench.py --quick

# Refresh the lock after editing pyproject.toml (keeps every other pin where it can).
lock: | $(UV)
	$(UV) lock

# Move every locked dependency to its newest allowed release.
lock-upgrade: | $(UV)
	$(UV) lock --upgrade

clean:
	rm -rf $(VENV) $(OUT) .mypy_cache .ruff_cache .pytest_cache

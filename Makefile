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

pytest: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

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

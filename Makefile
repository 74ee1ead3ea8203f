# Two entry points a fresh machine needs (see README):
#   make demo  - set up, then run the main job on the bundled sample documents
#   make test  - set up, then lint, type-check and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out

.PHONY: setup demo test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Re-install when the project metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/demo.sh "$(OUT)"

lint: setup
	$(BIN)/ruff check service operator tests bench
	$(BIN)/ruff format --check service operator tests bench

typecheck: setup
	$(BIN)/mypy service/percolate_reading operator/percolate_operator

pytest: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python bench/parse_bench.py --quick

clean:
	rm -rf $(VENV) $(OUT) .mypy_cache .ruff_cache .pytest_cache

# The two commands: `make demo` and `make test`. Both create .venv and
# install the package into it first (once; again when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast bench clean notebooks

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 14) else "recsys needs Python 3.11-3.13; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Train the default MovieLens two-tower model, build its ScaNN index, print
# HR@k beside its baselines and recommendations for two users.
demo: install
	$(BIN)/recsys train configs/movielens_two_tower.toml --output artifacts/demo
	$(BIN)/recsys recommend artifacts/demo --user 1 -k 5
	$(BIN)/recsys recommend artifacts/demo --user 42 -k 5

# The type check of the public modules ([tool.mypy] in pyproject.toml), the
# whole suite under JAX (the default backend), then the model and layer
# tests again under TensorFlow: both backends are supported. Tests run in
# parallel processes (pytest-xdist), one per core up to TEST_WORKERS; a
# worker that runs out of tests takes some queued for another (worksteal), so
# none idles while a slow test file ends. A bare `pytest` runs in one process.
TEST_WORKERS ?= 4
PYTEST := $(BIN)/python -m pytest -n auto --maxprocesses $(TEST_WORKERS) --dist worksteal
test: install
	$(BIN)/python -m mypy
	$(PYTEST)
	KERAS_BACKEND=tensorflow $(PYTEST) tests/layers tests/models

# Re-execute the notebooks in place and store them with their outputs
# (figures, tables); tests/test_notebooks.py fails when the stored outputs
# are not the current code's. Some only: make notebooks NOTEBOOKS="01 06".
notebooks: install
	$(BIN)/python notebooks/execute.py $(NOTEBOOKS)

bench: install
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python benchmarks/two_tower_vs_tfrs.py

clean:
	rm -rf $(VENV) artifacts .pytest_cache

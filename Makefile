# The two commands of the README:
#   make demo   sets everything up in .venv and runs `qopt demo` on the embedded default solver
#   make test   sets everything up in .venv and runs lint, type checks, the tests and the docs build
#
# TORCH is the torch requirement installed first. The default, torch==2.13.0, is a CPU build on
# the project's machines; on a machine without a GPU elsewhere use, for example,
#   make test TORCH="torch --index-url https://download.pytorch.org/whl/cpu"
# so that pip does not pull several GB of CUDA packages.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.qopt-installed
SOURCES := qopt integrations tests benchmarks examples

.PHONY: setup demo test lint typecheck unit docs package clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(VENV)/constraints.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/constraints.txt -e ".[all,dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/qopt demo

lint: setup
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)

typecheck: setup
	$(BIN)/mypy qopt integrations

unit: setup
	$(BIN)/pytest -n 2 --doctest-modules qopt integrations tests

docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

test: lint typecheck unit docs

# Build the sdist and wheel, check them, install the wheel into a fresh venv and import it all.
package: setup
	VENV=$(VENV) TORCH="$(TORCH)" bash .ci/package.sh

clean:
	rm -rf $(VENV) site dist .mypy_cache .ruff_cache .pytest_cache

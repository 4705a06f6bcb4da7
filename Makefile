PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: test lint test-slow test-gpu demo docs docs-serve install clean

# Created on first use; constraints.txt pins torch to the CPU build so no CUDA packages are pulled.
# Two steps: the package with its core dependencies (all the demo needs), then the extras the tests use.
$(VENV)/.core: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -c constraints.txt torch
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

# The extras the test suite needs: the README's by-hand set-up installs the same list (tests/unit/test_docs.py)
TEST_EXTRAS := dev,eval,log,export,hub,report,docs

$(BIN)/scrnet: $(VENV)/.core
	$(BIN)/pip install --quiet -c constraints.txt -e ".[$(TEST_EXTRAS)]"
	touch $@

install: $(BIN)/scrnet

# The default suite in TEST_WORKERS processes (pytest-xdist), one thread each: on 2 cores about 40% faster than one
# process with two threads (tests that run subprocesses, export graphs or bootstrap are mostly single-threaded).
TEST_WORKERS ?= 2
test: $(BIN)/scrnet
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS)

# Style and import hygiene, as pyproject.toml's [tool.ruff] sets them (CI runs it before the tests).
lint: $(BIN)/scrnet
	$(BIN)/ruff check .

# The embedded default: synthetic data, train SCRNet and the FPN baseline, compare (about 5 minutes on 2 cores).
demo: $(VENV)/.core
	$(BIN)/scrnet demo --out demo_out

test-slow: $(BIN)/scrnet
	$(BIN)/python -m pytest -q -m slow

# On a machine with CUDA: the GPU tests (CUDA vs CPU, AMP, OHEM) and the full benchmarks/gpu_check.py report.
test-gpu: $(BIN)/scrnet
	$(BIN)/python -m pytest -q -m gpu

# The documentation site (MkDocs + Material + mkdocstrings, the docs extra): built into site/, strict (a broken
# link or a missing API reference fails the build).
docs: $(BIN)/scrnet
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(BIN)/scrnet
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

clean:
	rm -rf $(VENV) .pytest_cache site

# connectome_dask — the two newcomer commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PYTEST_ARGS ?=
# test processes (pytest-xdist): one per core; PYTEST_WORKERS=0 runs in this process
PYTEST_WORKERS ?= auto

.PHONY: demo test bench lint contracts notebooks render-notebooks install install-test clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[plot]"
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PIP) install -q -e ".[test,plot,hpc]"
	@touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## Build a demo store on the embedded LocalCluster, assign ROIs, summarise, plot.
demo: $(VENV)/.installed
	$(VENV)/bin/connectome-dask demo --out demo_output

## Run the whole test suite (pytest exits 5 when it collects nothing: that fails too),
## after the house rules (ruff, import contracts, mypy).
test: $(VENV)/.installed-test lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) connectome_dask tests $(PYTEST_ARGS)

## ruff and the import-linter contracts of pyproject.toml (layers, forbidden imports).
contracts: $(VENV)/.installed-test
	$(VENV)/bin/ruff check connectome_dask tests benchmarks
	$(VENV)/bin/lint-imports

## Peer benchmarks at whole-brain scale (slow: builds a cached 50 M-synapse dataset).
bench: $(VENV)/.installed-test
	$(PIP) install -q -e ".[bench]"
	$(PY) -m benchmarks

## All house rules: ruff, import contracts, mypy (numpydoc sections: tests/test_house_rules.py).
lint: contracts
	$(VENV)/bin/mypy connectome_dask

## Execute the notebooks and keep the outputs in notebooks/rendered/ for reading.
render-notebooks: $(VENV)/.installed-test
	$(PY) -m tests.notebooks_runner --render notebooks/rendered

clean:
	rm -rf demo_output .pytest_cache

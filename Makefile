# connectome_dask — the two newcomer commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PYTEST_ARGS ?=

.PHONY: demo test bench lint notebooks render-notebooks install install-test clean

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

## Run the whole test suite (pytest exits 5 when it collects nothing: that fails too).
test: $(VENV)/.installed-test
	$(PY) -m pytest connectome_dask tests $(PYTEST_ARGS)

## Peer benchmarks at whole-brain scale (slow: builds a cached 50 M-synapse dataset).
bench: $(VENV)/.installed-test
	$(PIP) install -q -e ".[bench]"
	$(PY) -m benchmarks

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check connectome_dask tests benchmarks

## Execute the notebooks and keep the outputs in notebooks/rendered/ for reading.
render-notebooks: $(VENV)/.installed-test
	$(PY) -m tests.notebooks_runner --render notebooks/rendered

clean:
	rm -rf demo_output .pytest_cache

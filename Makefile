# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test test-fast lint bench install dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files: reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed

## demo: prepare the bundled MNIST sample, train a small CNN, print the test metrics
demo: install
	$(BIN)/dltrain prepare --recipe mnist_demo
	$(BIN)/dltrain train --recipe mnist_demo
	$(BIN)/dltrain evaluate --recipe mnist_demo

## test: the whole suite, slow end-to-end tests included (what CI runs)
test: dev
	$(BIN)/python -m pytest

## test-fast: skip the slow end-to-end tests
test-fast: dev
	$(BIN)/python -m pytest -m "not slow"

lint: dev
	$(BIN)/ruff check dltrain tests benchmarks
	$(BIN)/mypy dltrain

## bench: the Fashion-MNIST benchmark against the reference Keras script (see benchmarks/)
bench: install
	$(BIN)/python benchmarks/fashion_mnist.py

clean:
	rm -rf data runs .pytest_cache

# Two entry points, both idempotent on a fresh machine:
#   make run    set everything up, then run the main job on the built-in sample corpus
#   make test   set everything up, then lint and run the test suite
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MIXTURE ?= oxe_magic_soup

.PHONY: setup run test lint format clean

setup: $(STAMP)

# Reinstall only when the declared dependencies change.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m pipeline.run --mixture $(MIXTURE)

test: lint
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) output .cache

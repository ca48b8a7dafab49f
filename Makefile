# Two entry points, both idempotent on a fresh machine:
#   make run    set up (every extra but the test tools), then run the main job on the built-in sample corpus
#   make test   set up (every extra and the test tools), then lint and run the test suite
# Installs print pip's own progress (one line per package; the downloads' bars on a terminal).
# What each install holds and its size: README, "Installs".
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
MIXTURE ?= oxe_magic_soup

.PHONY: setup setup-test run test lint format clean

setup: $(RUN_STAMP)
setup-test: $(TEST_STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

# Reinstall only when the declared dependencies change.
$(RUN_STAMP): pyproject.toml | $(PY)
	@echo "make: installing the package with every extra but the test tools, '.[all]' (about 8 GB, minutes)"
	$(PY) -m pip install -e '.[all]'
	touch $@

$(TEST_STAMP): pyproject.toml | $(PY)
	@echo "make: installing the package with every extra and the test tools, '.[test]' (about 8 GB, minutes)"
	$(PY) -m pip install -e '.[test]'
	touch $@

run: $(RUN_STAMP)
	$(PY) -m pipeline.run --mixture $(MIXTURE)

test: lint
	# two processes, each taking whole test files (their session fixtures and venvs stay per process):
	# half the wall time on 2 cores (10 min against 19.5 min, the build machine)
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=10

lint: $(TEST_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(TEST_STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) output .cache

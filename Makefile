# Quick start: `make demo` (a grid25 study of four stability fixes x five seeds, then its answer), `make test`.
# Each target creates .venv and installs ganlab into it when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-single test test-fast lint format clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# compat: src/ on sys.path, so that Hydra's plugin scan (pkgutil over the hydra_plugins namespace) finds
	# ganlab's launcher and sweeper; setuptools' default editable import hook hides them from it
	$(PY) -m pip install --quiet -e ".[dev,mlflow]" --config-settings editable_mode=compat
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

demo-single: $(STAMP)
	$(PY) scripts/demo.py --single

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check src tests scripts
	$(PY) -m ruff format --check src tests scripts

format: $(STAMP)
	$(PY) -m ruff format src tests scripts
	$(PY) -m ruff check --fix src tests scripts

clean-venv:
	rm -rf $(VENV)

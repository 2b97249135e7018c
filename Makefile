# The README's quick start: `make run` (set up, then every lesson) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Silence the MkDocs-2.0 banners that mkdocs plugins print.
export NO_MKDOCS_2_WARNING := 1
export DISABLE_MKDOCS_2_WARNING := true

.PHONY: setup run test lint docs serve bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# CPU torch first: an unpinned torch pulls a multi-GB CUDA build. A torch already in
	# the venv (a GPU user's own) is kept.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[lessons,dev,docs]"
	touch $(STAMP)

run: setup
	$(VENV)/bin/lsce run all

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint
	$(PY) -m pytest

docs: setup
	$(PY) -m mkdocs build --strict

serve: setup
	$(PY) -m mkdocs serve

clean:
	rm -rf $(VENV) build site node_modules .pytest_cache .ruff_cache

# The README's quick start: `make run` (set up, then every lesson) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Silence the MkDocs-2.0 banners that mkdocs plugins print.
export NO_MKDOCS_2_WARNING := 1
export DISABLE_MKDOCS_2_WARNING := true
# Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning threads
# make small torch CPU work (lessons, tests) many times slower.
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup node run check test lint docs serve bench clean

setup: $(STAMP) node

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# CPU torch first: an unpinned torch pulls a multi-GB CUDA build. A torch already in
	# the venv (a GPU user's own) is kept.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[lessons,dev,docs]"
	touch $(STAMP)

# Node packages (package-lock.json): playwright-core for the docs' browser test, katex to
# re-vendor docs/assets/vendor/katex. Without npm this step is skipped and the browser test
# reports itself as skipped (.ci/run makes that a failure).
NODE_STAMP := node_modules/.installed
node:
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "npm not found: skipping npm ci (the docs browser test will be skipped)"; \
	elif [ ! -f $(NODE_STAMP) ] || [ package-lock.json -nt $(NODE_STAMP) ]; then \
	  npm ci --no-audit --no-fund && touch $(NODE_STAMP); \
	fi

run: setup
	$(VENV)/bin/lsce run all

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy lsce_scratch

test: lint
	$(PY) -m pytest

# The quick signal while you work, under a minute on a 2-core machine: lint, then the tests
# not marked slow, stopping at the first failure, without the files below: the big oracle
# grids (thousands of cases against PyTorch and its peers), and the tests that run whole
# programs (lsce, the pets pipeline, child processes, torch.compile, gradient descent).
# `make test`, the gate CI runs, runs everything.
CHECK_SKIP := test_losses_oracle test_oracle_pytorch test_oracle_peers test_losses_optimum \
	test_autocast_compile test_exercise_mechanism test_mistake_catalogue test_lessons \
	test_notebooks test_bench test_boundaries test_pets_model test_pets_data test_pets_train \
	test_pets_command test_pets_augment test_pets_benchmark
check: lint
	$(PY) -m pytest -m "not slow" -q -x $(CHECK_SKIP:%=--ignore=tests/%.py)

# The site runs every lesson for its figures (cached in build/docs-figures/);
# LSCE_QUICK=1 make docs uses the quick runs.
docs: setup
	$(PY) -m mkdocs build --strict

serve: setup
	$(PY) -m mkdocs serve --dev-addr 127.0.0.1:8000

# The benchmark command (not part of make test): prints a table, writes the JSON the
# Benchmarks page shows. On a CUDA machine: $(PY) benchmarks/bench.py --device cuda.
bench: setup
	$(PY) benchmarks/bench.py --out docs/benchmarks/cpu.json

clean:
	rm -rf $(VENV) build site node_modules .pytest_cache .ruff_cache .mypy_cache

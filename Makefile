# `make demo` and `make test` are README's quick start. They need Python 3.10 or newer, make,
# and the package index (pip downloads the dependencies); both use one virtual environment,
# .venv, made on first use: the demo installs the package there, the tests add the test extra.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint docs docs-serve clean

# The package alone (what the demo needs), then the test extra on top of it.
$(VENV)/.package: setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed: $(VENV)/.package
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.package
	$(BIN)/python examples/quickstart.py

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

# The linter (rules in ruff.toml) and the type checker (settings in setup.cfg), as .ci/run runs them.
LINT_VENV ?= .venv-lint
$(LINT_VENV)/.installed: setup.cfg setup.py
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LINT_VENV)/bin/python -m pip install --quiet -e '.[lint]'
	touch $@

lint: $(LINT_VENV)/.installed
	$(LINT_VENV)/bin/ruff check .
	$(LINT_VENV)/bin/mypy

# The documentation site (mkdocs.yml, docs/), built in its own virtual environment as lint is;
# --strict turns every warning (a broken link, a missing page or reference) into a failure.
DOCS_VENV ?= .venv-docs
$(DOCS_VENV)/.installed: setup.cfg setup.py
	$(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DOCS_VENV)/bin/python -m pip install --quiet -e '.[docs]'
	touch $@

docs: $(DOCS_VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(DOCS_VENV)/bin/mkdocs build --strict

docs-serve: $(DOCS_VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(DOCS_VENV)/bin/mkdocs serve

clean:
	rm -rf site .venv .venv-* build *.egg-info

# Benchmarks: ours next to the baselines (NullHandler, QueueHandler, customerio-cdp-analytics),
# measured in the same run; see benchmarks/README.md.
BENCH_VENV ?= .venv-bench
.PHONY: bench bench-quick soak

$(BENCH_VENV)/.installed: setup.cfg setup.py
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[bench]'
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m benchmarks $(BENCH_ARGS)

bench-quick: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m benchmarks --quick

# The five-minute outage (API refusing, 2,000 events/s): RSS over time beside the queue's size.
soak: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m benchmarks.outage --seconds 300 --rate 2000 --every 15 $(SOAK_ARGS)

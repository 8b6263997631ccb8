# `make demo` and `make test` are README's quick start: each creates its own
# virtual environment, so a machine with only Python can run them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test clean

$(VENV)/.installed: setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python examples/quickstart.py

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

clean:
	rm -rf .venv .venv-* build *.egg-info

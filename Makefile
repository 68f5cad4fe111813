# The two quick-start commands: `make serve` and `make test`. CI runs `.ci/run`, which calls `make test`.
PYTHON ?= python3
VENV ?= .venv
PORT ?=
CONFIG ?=
# PostgreSQL's and every executor's extra (as the Dockerfile), so that any [processing] mode a
# configuration names runs on a fresh clone; wheels or pure Python, no compiler. Add pywps for its processes.
EXTRAS ?= postgres,scheduler,docker

BIN := $(VENV)/bin
CONFIG_ARG := $(if $(CONFIG),--config $(CONFIG))
PORT_ARG := $(if $(PORT),--port $(PORT))

.PHONY: serve test lint install install-test db bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

# Creates or migrates the job database, then runs gunicorn and the dispatcher.
serve: install
	$(BIN)/hpc-wps $(CONFIG_ARG) serve $(PORT_ARG)

db: install
	$(BIN)/hpc-wps $(CONFIG_ARG) db upgrade

lint: install-test
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check app processes scheduler migrations tests

# The environment of the real backends (scripts/services.sh starts them) comes from their own scripts.
test: lint
	eval "$$(scripts/clusters.sh env)"; eval "$$(scripts/podman.sh env)"; $(BIN)/pytest -q -ra

bench: install-test
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache

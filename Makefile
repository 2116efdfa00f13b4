# aine: two commands on a fresh machine with Python 3.11 and make:
#   make study    # venv + install + fetch data + run the study on the smoke config
#   make test     # venv + install + fetch smoke data + the test suite
# Full study: make study CONFIG=configs/paper.yaml

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
CONFIG ?= configs/smoke.yaml
BIN    := $(VENV)/bin
PYTEST_ARGS ?= -m "not slow"

.PHONY: install data study book lint test test-all lab strip clean help

help:
	@echo "make study [CONFIG=configs/paper.yaml]  run the study (default: smoke config)"
	@echo "make test                                lint (import layers, ruff) and run the test suite"
	@echo "make book [CONFIG=...]                   HTML book of the executed notebooks (after make study)"
	@echo "make lab                                 open the notebooks in JupyterLab"

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

data: install
	$(BIN)/aine fetch --config $(CONFIG)

study: data
	$(BIN)/aine run --config $(CONFIG)

book: install
	$(BIN)/aine book --config $(CONFIG) --check

lint: install
	$(BIN)/lint-imports
	$(BIN)/ruff check aine_lib tests benchmarks

test: install lint
	$(BIN)/aine fetch --config configs/smoke.yaml
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

test-all:
	$(MAKE) test PYTEST_ARGS=

lab: install
	$(BIN)/jupyter lab notebooks/

strip: install
	$(BIN)/nbstripout --keep-id notebooks/*.ipynb

clean:
	rm -rf build/

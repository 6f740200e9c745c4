# heldout: two entry points for a fresh machine (see README.md).
#   make demo   set up .venv, build the mini-Census, curate + validate + split + release a dataset
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HELDOUT := $(BIN)/heldout

.PHONY: setup demo test bench clean-demo

setup: $(HELDOUT)

$(HELDOUT): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $@

demo: $(HELDOUT)
	test -f mirror/release.json || $(HELDOUT) mirror build
	$(HELDOUT) curate glioma-tirosh2016
	$(HELDOUT) validate data/curated/glioma-tirosh2016.h5ad

test: $(HELDOUT)
	$(BIN)/python -m pytest

clean-demo:
	rm -rf mirror data

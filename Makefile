# heldout: two entry points for a fresh machine (see README.md).
#   make demo   set up .venv; in demo/: a registry repo, the DVC pipeline (mini-Census -> curate ->
#               validate -> split -> orthologs), release v1, pull it back verified, audit leakage
#   make test   set up .venv; lint every dataset card against the mini-Census; run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV)/bin)
HELDOUT := $(BIN)/heldout
WITH_VENV := PATH="$(BIN):$$PATH"

.PHONY: setup demo test lint bench clean

setup: $(HELDOUT)

$(HELDOUT): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $@

demo: $(HELDOUT)
	rm -rf demo
	$(HELDOUT) init demo/registry
	cd demo/registry && $(WITH_VENV) dvc repro
	cd demo/registry && git add -A && git commit -qm "Build the datasets" && $(WITH_VENV) heldout release v1
	cd demo && $(HELDOUT) pull glioma-tirosh2016@v1 --registry registry -o glioma-tirosh2016.h5ad
	cd demo && $(HELDOUT) validate glioma-tirosh2016.h5ad
	cd demo/registry && $(HELDOUT) audit --report ../audit.md

lint: $(HELDOUT)
	test -f mirror/release.json || $(HELDOUT) mirror build
	$(HELDOUT) lint --dry-run

test: lint
	$(BIN)/python -m pytest

bench: $(HELDOUT)
	cd benchmarks && for b in bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf demo mirror data results

# heldout: two entry points for a fresh machine (see README.md).
#   make demo   set up .venv; in demo/: a registry repo, the DVC pipeline (mini-Census -> curate ->
#               validate -> split -> orthologs), release v1, pull it back verified, train two real models
#               (cell typing, perturbation), audit leakage, evaluate them beside baselines, build the site
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
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[test,demo]"
	touch $@

demo: $(HELDOUT)
	rm -rf demo
	$(HELDOUT) init demo/registry
	cd demo/registry && $(WITH_VENV) dvc repro
	cd demo/registry && git add -A && git commit -qm "Build the datasets" && $(WITH_VENV) heldout release v1
	cd demo && $(HELDOUT) pull glioma-tirosh2016@v1 --registry registry -o glioma-tirosh2016.h5ad
	cd demo && $(HELDOUT) validate glioma-tirosh2016.h5ad
	# A real model trained from release v1 (CellTypist + a PCA encoder); its two corpora recorded exactly
	cd demo/registry && $(BIN)/python -m heldout.demo.pancreas_typist train --registry . --release v1 --out ../model
	cd demo/registry && $(HELDOUT) corpus record --model pancreas-typist --corpus encoder-cells \
		--role pretraining ../model/pretraining.h5ad
	cd demo/registry && $(HELDOUT) corpus record --model pancreas-typist --corpus labelled-cells \
		--role task_training ../model/task_training.h5ad
	# A real perturbation predictor trained on Norman 2019's training conditions of release v1; its corpus recorded
	cd demo/registry && $(BIN)/python -m heldout.demo.perturbation_ridge train --registry . --release v1 \
		--dataset norman-2019 --out ../perturbation-model
	cd demo/registry && $(HELDOUT) corpus record --model perturbation-ridge --corpus norman-training-conditions \
		--role task_training ../perturbation-model/task_training.h5ad
	cd demo/registry && git add -A && git commit -qm "pancreas-typist, perturbation-ridge: recorded corpora" && \
		$(WITH_VENV) heldout release v2
	# Audit release v2 from outside the registry: every card and corpus fetched from it and verified
	cd demo && $(HELDOUT) audit --release v2 --registry registry --report audit.md
	# Evaluate it on the held-out donor (GREEN) beside controls; a RED pairing (all Baron cells) is refused
	cd demo && $(BIN)/python -m heldout.demo.pancreas_typist embed --model model --registry registry \
		--dataset baron-pancreas-human@v2 --out baron.parquet --predictions baron-predictions.parquet
	cd demo/registry && $(HELDOUT) evaluate --task baron-annotation --release v2 --model pancreas-typist \
		--embeddings ../baron.parquet --results ../results
	cd demo/registry && $(HELDOUT) evaluate --task baron-annotation --release v2 --model pancreas-typist \
		--predictions ../baron-predictions.parquet --results ../results
	cd demo/registry && ! $(HELDOUT) evaluate --task baron-integration --release v2 --model pancreas-typist \
		--embeddings ../baron.parquet --results ../results
	# Perturbation prediction: held-out Norman conditions (GREEN), and McFaline's glioma lines predicted from
	# K562; beside control, mean, additive, linear baselines and the technical replicate. GEARS is RED on Norman.
	cd demo && $(BIN)/python -m heldout.demo.perturbation_ridge predict --model perturbation-model \
		--registry registry --dataset norman-2019@v2 --out norman-predictions.h5ad
	cd demo && $(BIN)/python -m heldout.demo.perturbation_ridge predict --model perturbation-model \
		--registry registry --dataset mcfaline-figueroa-2023@v2 --out mcfaline-predictions.h5ad
	cd demo/registry && $(HELDOUT) evaluate --task norman-perturbation --release v2 --model perturbation-ridge \
		--predictions ../norman-predictions.h5ad --values log1p --results ../results
	cd demo/registry && $(HELDOUT) evaluate --task mcfaline-cross-cell-line --release v2 --model perturbation-ridge \
		--predictions ../mcfaline-predictions.h5ad --values log1p --results ../results
	cd demo/registry && ! $(HELDOUT) evaluate --task norman-perturbation --release v2 --model gears-norman \
		--predictions ../norman-predictions.h5ad --values log1p --results ../results
	cd demo/registry && $(HELDOUT) report --results ../results --out ../report.html
	# The registry as a static website: datasets x versions, models, the tier grid, leaderboards, a lookup
	cd demo && $(HELDOUT) site build site --registry registry --results results
	cd demo/registry && test -z "$$(git status --porcelain --untracked-files=all)"   # nothing left behind

lint: $(HELDOUT)
	test -f mirror/release.json || $(HELDOUT) mirror build
	$(HELDOUT) lint --dry-run

# two pytest-xdist workers: the shared registry's tests in one (tests/conftest.py), the rest spread
test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: $(HELDOUT)
	cd benchmarks && for b in bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf demo mirror data results

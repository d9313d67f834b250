# overnight — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INPUT ?=
OUT ?= overnight-results
WORKERS ?= 2
PYTEST_ARGS ?=
DSB ?= ../shared/data/dsb2018-fluo
STAMP := $(VENV)/.installed

.PHONY: help install run test test-fast test-deploy lint bench bench-accuracy bench-robustness bench-volume bench-retrain bench-cluster train train-nuclei quantize clean system-deps

help:  ## List the targets and what each does
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c requirements.lock -e '.[test]'
	touch $(STAMP)

install: $(STAMP)  ## Create .venv and install overnight with its test tools

system-deps:  ## Install redis-server, chromium, docker.io, docker-compose, debootstrap with apt when missing (root)
	@bash scripts/system-deps.sh

run: install  ## Analyse INPUT=/path/to/tiffs (default: a generated demo dataset) into OUT
	@if [ -z "$(INPUT)" ]; then \
	  if [ ! -d demo-data/images ]; then \
	    echo "No INPUT given: generating a demo dataset in demo-data/ (overnight synth cytometry)"; \
	    $(BIN)/overnight synth cytometry demo-data --n 12 --seed 1; \
	  fi; \
	  $(BIN)/overnight run demo-data/images --out $(OUT) --workers $(WORKERS); \
	else \
	  $(BIN)/overnight run "$(INPUT)" --out $(OUT) --workers $(WORKERS); \
	fi

test: install system-deps  ## Install what the tests need, then run the whole suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install  ## Run the suite without slow and browser tests
	$(BIN)/python -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

test-deploy: install system-deps  ## Build the images, run docker-compose end to end with crashes; figures in bench/results/deploy.json
	OVERNIGHT_DEPLOY_REPORT=bench/results/deploy.json OVERNIGHT_DEPLOY_ARTEFACTS=bench/results \
	  $(BIN)/python -m pytest tests/deploy/e2e $(PYTEST_ARGS)

lint: install  ## ruff and mypy on the library
	$(BIN)/ruff check shared services tests
	$(BIN)/mypy shared/overnight

bench: install  ## Speed and memory benchmarks, JSON under bench/results/
	$(BIN)/python -m bench.run_all

bench-accuracy: install  ## Accuracy on fresh hold-out images, tables under bench/results/
	$(BIN)/python -m bench.accuracy $(if $(wildcard $(DSB)),--dsb-data $(DSB))
	$(BIN)/python -m bench.accuracy_skin

bench-robustness: install  ## Where learned and classical break as parameters leave their range (+ QC flags)
	$(BIN)/python -m bench.robustness
	$(BIN)/python -m bench.robustness_skin

bench-volume: install  ## Peak RSS and throughput of fields and volumes beyond the memory budget (~40 min)
	nice -n 10 $(BIN)/python -m bench.large_volume

bench-retrain: install  ## Correct 3/6/12 shifted-domain fields, fine-tune from reviews, score (~25 min, 2 cores)
	nice -n 10 $(BIN)/python -m bench.retrain

bench-cluster: install  ## Discrete-event simulation of the Kubernetes scale-out
	$(BIN)/python -m bench.cluster

train: install  ## Retrain models/cells, pnp and skin from the synthetic generator (~70 min on 2 cores, skin ~35 of them)
	$(BIN)/overnight train all --out models
	$(BIN)/python -m overnight.models.quantize models/pnp models/cells

quantize: install  ## Rebuild the int8 networks (models/pnp, models/cells: network.int8.onnx) from their weights
	$(BIN)/python -m overnight.models.quantize models/pnp models/cells

train-nuclei: install  ## Retrain models/nuclei-dsb2018 from DSB2018 nuclei (DSB=folder of images/ + masks/)
	$(BIN)/overnight train cells --data $(DSB) --out models/nuclei-dsb2018

clean:  ## Remove generated demo data and results (keeps .venv)
	rm -rf demo-data $(OUT) .pytest_cache

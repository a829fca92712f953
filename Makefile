# codecgan — `make help` lists the targets.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv test test-slow format demo tensorboard diagnose zoo bench clean

help:  ## Show this help.
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)  ## Create .venv and install codecgan with its dev extras (about 2 minutes the first time).

test: $(STAMP)  ## Lint (ruff check, ruff format --check), then the fast test suite (under 8 minutes on 2 CPU cores).
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	OMP_NUM_THREADS=1 $(PYTHON) -m pytest -q --durations=25

format: $(STAMP)  ## Format the code and apply ruff's safe fixes (what `make test` checks).
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test-slow: $(STAMP)  ## Run the end-to-end tests marked slow (20-35 minutes on 2 CPU cores).
	OMP_NUM_THREADS=1 $(PYTHON) -m pytest -q -m slow --durations=25

demo: $(STAMP)  ## Train the tiny codec on synthetic speech and diagnose its run (about 4.5 minutes on 2 CPU cores).
	OMP_NUM_THREADS=1 $(PYTHON) -m codecgan.demo

tensorboard: $(STAMP)  ## Open TensorBoard on runs/ (the dashboard is under Custom Scalars).
	$(VENV)/bin/tensorboard --logdir runs

diagnose: $(STAMP)  ## Diagnose every run under runs/ (codecgan diagnose runs).
	$(VENV)/bin/codecgan diagnose runs

zoo: $(STAMP)  ## Run the failure zoo (every fault overlay + controls, about 45 min on 2 CPU cores).
	OMP_NUM_THREADS=1 $(PYTHON) -m bench.zoo

bench: $(STAMP)  ## Run the benchmarks (GPU steps, and the CPU host-overhead table) into bench/results/<device>.md (~35 min on an H100 node).
	$(PYTHON) -m bench.run_all

clean:  ## Remove runs/ and caches (keeps .venv).
	rm -rf runs lightning_logs .pytest_cache

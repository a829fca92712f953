# codecgan — `make help` lists the targets.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv test test-slow demo tensorboard clean

help:  ## Show this help.
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)  ## Create .venv and install codecgan with its dev extras (about 2 minutes the first time).

test: $(STAMP)  ## Run the fast test suite (under 15 minutes on 2 CPU cores).
	$(PYTHON) -m pytest -q

test-slow: $(STAMP)  ## Run only the slow tests.
	$(PYTHON) -m pytest -q -m slow

demo: $(STAMP)  ## Train the tiny codec on synthetic speech for about two minutes on CPU.
	$(PYTHON) -m codecgan.demo

tensorboard: $(STAMP)  ## Open TensorBoard on runs/.
	$(VENV)/bin/tensorboard --logdir runs

clean:  ## Remove runs/ and caches (keeps .venv).
	rm -rf runs lightning_logs .pytest_cache

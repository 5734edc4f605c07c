# The two quick-start commands. Both set up .venv first (tools/setup_venv.sh,
# idempotent), so they work on a fresh machine and cost ~1 s once set up.
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: setup demo test
setup:
	VENV=$(VENV) tools/setup_venv.sh

demo: setup
	$(PYTHON) tools/demo.py

test: setup
	$(PYTHON) -m pytest $(PYTEST_ARGS)

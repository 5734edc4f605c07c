# The two quick-start commands. Both set up .venv first (tools/setup_venv.sh,
# idempotent), so they work on a fresh machine and cost ~1 s once set up.
# `make test` runs lint and type checks first (fast fail), then every test, then the parity
# tests under other CPU kernel sets (tools/test_kernel_sets.sh), then the distribution lane
# (tools/test_distro.sh); `make test-fast` runs lint, type checks and the
# tests marked neither `ros` nor `slow` (pytest.ini), in under a minute.
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: setup demo test test-fast test-kernels test-distro lint typecheck
setup:
	VENV=$(VENV) tools/setup_venv.sh

demo: setup
	$(PYTHON) tools/demo.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

test-fast: lint typecheck
	$(PYTHON) -m pytest -m "not ros and not slow" $(PYTEST_ARGS)

test: lint typecheck
	$(PYTHON) -m pytest $(PYTEST_ARGS)
	PYTHON=$(PYTHON) tools/test_kernel_sets.sh $(PYTEST_ARGS)
	tools/test_distro.sh $(PYTEST_ARGS)

# Parity must not depend on the CPU: the parity tests under AVX2 and scalar kernels too.
test-kernels: setup
	PYTHON=$(PYTHON) tools/test_kernel_sets.sh $(PYTEST_ARGS)

# The core and parity tests on Debian 12's python3-torch/numpy/opencv (the oldest supported).
test-distro:
	tools/test_distro.sh $(PYTEST_ARGS)

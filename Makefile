# Two commands do everything on a fresh machine:
#   make demo   - set up, then build the quickstart model for the embedded default target and run the bundle
#   make test   - set up, then run the whole test suite (unit, plugin, end-to-end)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deploykit-installed
PYTEST_ARGS ?=
# tests call tools the dev extra installs into the venv (shellcheck, hadolint, deploykit)
VENV_PATH = PATH="$(abspath $(VENV))/bin:$$PATH"

.PHONY: setup device-envs demo test test-unit test-plugin test-e2e bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

setup: $(STAMP)

# Python 3.6 / 3.10 environments for device-side tests (best effort; tests skip without them)
device-envs:
	bash scripts/device-envs.sh

demo: $(STAMP)
	cd examples/quickstart && $(VENV_PATH) bash run.sh

test: $(STAMP) device-envs
	$(VENV_PATH) $(PY) -m pytest -n 2 -q $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(VENV_PATH) $(PY) -m pytest -q -m unit $(PYTEST_ARGS)

test-plugin: $(STAMP)
	$(VENV_PATH) $(PY) -m pytest -q -m plugin $(PYTEST_ARGS)

test-e2e: $(STAMP)
	$(VENV_PATH) $(PY) -m pytest -q -m e2e $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build dist *.egg-info examples/quickstart/out

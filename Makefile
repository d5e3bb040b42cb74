# One command to run the system, one to test it. Both install what they need first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast lint train clean

install: $(STAMP)

# Reinstall only when a requirements file changes.
$(STAMP): requirements-dev.txt backend_service/requirements.txt predictor_service/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

## Start the emulator, train the default model if needed, start both services; Ctrl-C stops all.
run: install
	$(PY) -m devstack

## The whole test suite: unit, contract and integration (emulator tests skip where it is absent).
test: install
	$(PY) -m pytest

## Unit and contract tests only: no emulator, no processes.
test-fast: install
	$(PY) -m pytest -m "not emulator and not slow"

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

## Retrain on the project's copy of the TLC data, register the model, refresh the coarse table.
train: install
	mkdir -p .local
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/.local/mlflow.db} \
	MLFLOW_ARTIFACT_LOCATION=$${MLFLOW_ARTIFACT_LOCATION:-$(CURDIR)/.local/mlartifacts} \
	$(PY) -m training.train --coarse-out backend_service/coarse_model.json

clean:
	rm -rf .local .pytest_cache .ruff_cache .mypy_cache

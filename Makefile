# One command to run the system, one to test it. Both install what they need first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help install run trace test test-fast lint train train-course clean clean-local

## List the targets with what each does.
help:
	@awk '/^## /{c = c (c ? " " : "") substr($$0, 4); next} /^\.PHONY/{next} \
	      /^[a-z-]+:/{if (c) printf "  %-18s %s\n", substr($$1, 1, length($$1) - 1), c} {c = ""}' $(MAKEFILE_LIST)

## Create .venv and install the dev requirements (again only when a requirements file changes).
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

## One ride's timeline from `make run`'s spans, hop by hop: RIDE=<ride_id>, the latest if unset.
trace: install
	$(PY) -m devstack.timeline $(RIDE)

# Four workers whatever the cores: most of the suite waits on emulators and service processes,
# so two workers leave two cores half idle, and each worker starts emulators of its own.
TEST_WORKERS ?= 4
## The whole test suite: unit, contract and integration (emulator tests skip where it is absent),
## on TEST_WORKERS pytest-xdist workers, a test file to a worker, the longest files first
## (tests/kit/schedule.py), one Pub/Sub and one Firestore emulator for all; the full drills
## are `make faults`.
test: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

## The tests that take milliseconds: no emulator, no training, no service process; under a minute.
test-fast: install
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not emulator and not slow"

## ruff, ruff format --check and mypy on the product packages.
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

## Log the course's baseline (DictVectorizer + LinearRegression) and register it as
## models:/ride-duration-course@production. Serve it:
## MODEL_URI=models:/ride-duration-course@production make run
train-course: install
	mkdir -p .local
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/.local/mlflow.db} \
	MLFLOW_ARTIFACT_LOCATION=$${MLFLOW_ARTIFACT_LOCATION:-$(CURDIR)/.local/mlartifacts} \
	$(PY) -m training.course

## Remove caches; the local MLflow registry and run logs in .local/ stay.
clean:
	rm -rf .pytest_cache .ruff_cache .mypy_cache .hypothesis
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

## Also delete .local/: the local MLflow registry (every trained model), bench and run logs.
clean-local: clean
	@echo "deleting .local/: the local MLflow registry, its models and the run logs"
	rm -rf .local

# Shipping a model, rehearsed locally (docs/ship-model.md). MODEL is the candidate, the course's
# baseline unless given (registered first if missing); REPLAY=0 compares live rides for a minute.
.PHONY: shadow compare ship-drill
MODEL ?= models:/ride-duration-course@production
REPLAY ?= 200

## Beside `make run`: a candidate predictor for MODEL shadowing every ride, until Ctrl-C.
shadow: install
	$(PY) -m devstack.shadow $(MODEL)

## Beside `make run` and `make shadow`: the compare report on REPLAY rides of the validation month.
compare: install
	$(PY) -m devstack.compare --project $${PROJECT_ID:-local-project} \
		--emulator 127.0.0.1:$${PUBSUB_EMULATOR_PORT:-8085} --replay $(REPLAY)

## The rehearsal on an emulator of its own: shadow MODEL, compare, promote, roll back; both reports.
ship-drill: install
	$(PY) -m devstack.ship_drill --candidate $(MODEL) --replay $(REPLAY)

.PHONY: faults soak dead-letters
SOAK_SECONDS ?= 300
SOAK_RATE ?= 20

## Fault drills on a stack of their own (about 10 min); prints the table of docs/reliability.md.
faults: install
	mkdir -p .local
	$(PY) -m faults

## The long soak, not part of `make test`: SOAK_SECONDS at SOAK_RATE rides/s on two backends.
soak: install
	mkdir -p .local
	$(PY) -m faults --soak-seconds $(SOAK_SECONDS) --rate $(SOAK_RATE)

## List dead letters with their reason; replay with ARGS="replay --id ID" (or --reason R, --all).
## Defaults to the `make run` emulator; PUBSUB_EMULATOR_HOST= (empty) and PROJECT_ID target GCP.
dead-letters: install
	PUBSUB_EMULATOR_HOST=$${PUBSUB_EMULATOR_HOST-127.0.0.1:$${PUBSUB_EMULATOR_PORT:-8085}} \
	PROJECT_ID=$${PROJECT_ID:-local-project} \
	$(PY) -m deadletters $(or $(ARGS),list)

## Benchmarks (docs/benchmarks.md): their own emulator and stacks on free loopback ports;
## results in bench/results/<time>/ (results.json, report.md, latency.png).
.PHONY: bench bench-quick bench-models bench-tools
bench: install bench-tools
	$(PY) -m bench $(ARGS)

## The reduced set, under two minutes; ARGS="--tracing off on" adds predictor CPU per push and
## backend CPU per ride with tracing off, then on at the deploy's 10 % (python -m bench -h).
bench-quick: install bench-tools
	$(PY) -m bench --quick $(ARGS)

## The hand-written Pub/Sub paths with 15 ms added each way by the lab's TCP proxy;
## ARGS="--only push" and others: python -m bench.realistic -h
.PHONY: bench-realistic
bench-realistic: install bench-tools
	$(PY) -m bench.realistic $(ARGS)

## Rides in memory against Firestore (POST /rides p50/p99 at 100 rides/s, the stores alternating),
## then 8 backends at 200 rides/s and what fanning results out to them costs; needs both
## emulators. Writes bench/results/ride-store-<time>.json; ARGS: python -m bench.ride_store -h
.PHONY: bench-ride-store
bench-ride-store: install
	$(PY) -m bench.ride_store $(ARGS)

## The predictor serving the project's booster and the course's pipeline, side by side.
bench-models: install bench-tools
	$(PY) -m bench.models

# wrk (a Debian package) drives the closed-loop measurements; where it cannot be installed they
# are skipped, and the report says so.
## Install wrk from Debian's packages if missing.
bench-tools:
	@command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null 2>&1 \
		|| { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq wrk >/dev/null 2>&1; } \
		|| echo "wrk could not be installed: the wrk measurements will be skipped"

# sweepflow: `make demo` and `make test` are all most people need. See README.md.
#
#   make venv     .venv at the repo root from requirements.lock (skipped when up to date)
#   make demo     the whole pipeline on the tiny example through Prefect + local SLURM (minutes)
#   make demo-plan only plan + set up the example, as plain Python (seconds)
#   make test     every test (tests/integration starts its own Prefect server)
#   make lint     ruff (style, imports, docstrings) and mypy on tasks/, flows/, blocks/, sweepflow/
#   make bench    plan time of a 1,000-run design
#   make server   Prefect server on 127.0.0.1:$(PORT), SQLite under .state/ (DB=postgres: PostgreSQL)
#   make deploy   work pool `sweepflow` + the deployments in prefect.yaml
#   make worker   a process worker for that pool (background, log in .state/worker.log)
#   make stop     stop the worker, server and SLURM cluster started here (by their PID files)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sweepflow-installed
STATE := $(ROOT)/.state
HOST := 127.0.0.1
PORT ?= 4200
API_URL := http://$(HOST):$(PORT)/api
POOL := sweepflow
# Prefect's database: sqlite (embedded, the default) or postgres (scripts/postgres-local on 127.0.0.1)
DB ?= sqlite
PG_DIR := $(STATE)/postgres
PG_PORT ?= 5433
DEMO_DIR := $(ROOT)/demo
DEMO_DESIGN := examples/tiny_demo/design.yaml

# Offline and quiet: no telemetry, no model hub, no tiktoken downloads.
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_CLI_PROMPT := false
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TIKTOKEN_CACHE_DIR :=
export HF_HOME ?= $(STATE)/hf
# Prefect's own files (the temporary server's database, profiles) stay inside the clone.
export PREFECT_HOME ?= $(STATE)/prefect
# The deployment's pull step changes into this folder; `prefect deploy` stores it.
export SWEEPFLOW_HOME := $(ROOT)
# The scheduled advance-runs deployment scans this folder for run groups (the demo writes here).
export SWEEPFLOW_OUTPUT_DIR ?= $(ROOT)/demo/experiments

.PHONY: help venv demo demo-plan test test-fast lint bench schema server deploy worker stop clean

help:
	@sed -n '3,13p' Makefile

venv: $(STAMP)

# Prefect creates its home folder but not the folders above it (a fresh clone has no .state/):
# without this, the temporary server of a plain-Python flow run cannot open its database.
$(PREFECT_HOME) $(HF_HOME):
	@mkdir -p $@

# torch first, from its CPU wheel: a bare `torch` requirement pulls GBs of CUDA packages.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.lock
	$(BIN)/pip install --disable-pip-version-check -q -e . --no-deps
	@touch $@

# The whole mission: local SLURM (or the local backend), Prefect server + worker, deployments,
# run-experiment on the tiny example (plan -> setup -> sbatch -> torchtune -> inspect ->
# summary), auto-approved. Leaves the server running; `make stop` stops what it started.
demo: venv
	scripts/demo

# Only plan + set up the example (no jobs, no server): seconds.
demo-plan: venv | $(PREFECT_HOME) $(HF_HOME)
	$(BIN)/python -m examples.tiny_demo.make_example $(DEMO_DIR)
	$(BIN)/python -m flows.plan_runs $(DEMO_DESIGN) --auto-approve --continue-to-setup | tee $(STATE)/demo.out
	@group=$$(head -n 1 $(STATE)/demo.out); \
	echo; echo "== $$group/runs_plan.md (first 40 lines) =="; head -n 40 "$$group/runs_plan.md"; \
	echo "..."; echo; echo "== files under demo/ =="; \
	find $(DEMO_DIR) -path '*/.*' -prune -o -type f -print | sed 's|^$(DEMO_DIR)/|  demo/|' | sort

# Two pytest processes: the integration tests start Prefect servers, real SLURM jobs and
# flows in-process, and a later temporary Prefect server in the same process can hang at
# shutdown; each half alone is clean.
test: venv | $(PREFECT_HOME) $(HF_HOME)
	$(BIN)/pytest --ignore=tests/integration
	$(BIN)/pytest tests/integration

test-fast: venv | $(PREFECT_HOME) $(HF_HOME)
	$(BIN)/pytest -m "not slow"

# The configuration is in pyproject.toml ([tool.ruff], [tool.mypy]); .ci/run runs this first.
lint: venv
	$(BIN)/ruff check tasks flows blocks sweepflow
	$(BIN)/mypy

bench: venv
	$(BIN)/python benchmarks/plan_1000.py

schema: venv
	$(BIN)/python -m tasks.model.schema

# --- Running through a Prefect server -------------------------------------------------

server: venv
	@mkdir -p $(STATE)/server
	@if [ -f $(STATE)/server.pid ] && kill -0 $$(cat $(STATE)/server.pid) 2>/dev/null; then \
		echo "server already running (PID $$(cat $(STATE)/server.pid)) at http://$(HOST):$(PORT)"; exit 0; fi; \
	if [ "$(DB)" = postgres ]; then \
		PG_LOCAL_DIR=$(PG_DIR) PG_LOCAL_PORT=$(PG_PORT) scripts/postgres-local start && touch $(STATE)/postgres-started; \
		export PREFECT_API_DATABASE_CONNECTION_URL=$$(PG_LOCAL_PORT=$(PG_PORT) scripts/postgres-local url); \
	elif [ "$(DB)" != sqlite ]; then echo "DB must be sqlite or postgres (got '$(DB)')" >&2; exit 2; fi; \
	PREFECT_HOME=$(STATE)/server setsid $(BIN)/prefect server start --host $(HOST) --port $(PORT) \
		> $(STATE)/server.log 2>&1 < /dev/null & echo $$! > $(STATE)/server.pid; \
	echo "starting Prefect server (PID $$(cat $(STATE)/server.pid), log .state/server.log) ..."; \
	for i in $$(seq 1 120); do \
		if $(BIN)/python -c "import urllib.request as u; u.urlopen('$(API_URL)/health', timeout=2)" 2>/dev/null; then \
			echo "server up at http://$(HOST):$(PORT) (API $(API_URL)) after $$i s"; exit 0; fi; \
		if ! kill -0 $$(cat $(STATE)/server.pid) 2>/dev/null; then break; fi; \
		sleep 1; \
	done; \
	echo "server did not become healthy; last lines of .state/server.log:" >&2; tail -n 30 $(STATE)/server.log >&2; exit 1

deploy: venv
	@test -n "$$SWEEPFLOW_HOME" -a -f "$$SWEEPFLOW_HOME/prefect.yaml" || \
		{ echo "SWEEPFLOW_HOME must be this clone's absolute path (got '$$SWEEPFLOW_HOME')" >&2; exit 1; }
	@$(BIN)/python -c "import urllib.request as u; u.urlopen('$(API_URL)/health', timeout=2)" 2>/dev/null || \
		{ echo "no Prefect server at $(API_URL): run 'make server' first" >&2; exit 1; }
	PREFECT_API_URL=$(API_URL) $(BIN)/prefect work-pool create $(POOL) --type process --overwrite
	PREFECT_API_URL=$(API_URL) $(BIN)/prefect deploy --all --no-prompt
	PREFECT_API_URL=$(API_URL) $(BIN)/python -m blocks.register

worker: venv
	@mkdir -p $(STATE)
	@if [ -f $(STATE)/worker.pid ] && kill -0 $$(cat $(STATE)/worker.pid) 2>/dev/null; then \
		echo "worker already running (PID $$(cat $(STATE)/worker.pid))"; exit 0; fi; \
	PREFECT_API_URL=$(API_URL) PREFECT_WORKER_QUERY_SECONDS=1 \
		setsid env --default-signal=INT $(BIN)/prefect worker start --pool $(POOL) \
		> $(STATE)/worker.log 2>&1 < /dev/null & echo $$! > $(STATE)/worker.pid; \
	for i in $$(seq 1 60); do \
		if grep -q "started" $(STATE)/worker.log 2>/dev/null; then \
			echo "worker started (PID $$(cat $(STATE)/worker.pid), pool $(POOL), log .state/worker.log)"; exit 0; fi; \
		if ! kill -0 $$(cat $(STATE)/worker.pid) 2>/dev/null; then break; fi; \
		sleep 1; \
	done; \
	echo "worker did not start; last lines of .state/worker.log:" >&2; tail -n 30 $(STATE)/worker.log >&2; exit 1

# Each PID file holds the leader of a process group made by setsid: stop that group
# (the server's and worker's own child processes), politely first.
stop:
	@for name in worker server; do \
		f=$(STATE)/$$name.pid; [ -f $$f ] || continue; pid=$$(cat $$f); \
		if kill -0 $$pid 2>/dev/null; then \
			kill -TERM -- -$$pid 2>/dev/null || kill -TERM $$pid; \
			for i in $$(seq 1 30); do kill -0 $$pid 2>/dev/null || break; sleep 0.5; done; \
			if kill -0 $$pid 2>/dev/null; then kill -KILL -- -$$pid 2>/dev/null || kill -KILL $$pid; fi; \
			echo "stopped $$name (PID $$pid)"; \
		fi; \
		rm -f $$f; \
	done
	@if [ -f $(STATE)/slurm-started-by-demo ]; then scripts/slurm-local stop && rm -f $(STATE)/slurm-started-by-demo; fi
	@if [ -f $(STATE)/postgres-started ]; then \
		PG_LOCAL_DIR=$(PG_DIR) scripts/postgres-local stop && rm -f $(STATE)/postgres-started; fi

clean: stop
	rm -rf $(STATE) $(DEMO_DIR)

# exchange-hub: make demo | make test | make lint | make bench
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
KAFKA := deploy/local/kafka.sh
PG := deploy/local/postgres.sh

.PHONY: install test lint demo demo-federation bench chaos kafka-up kafka-down clean

# The venv is rebuilt when the dependency list or the pinned constraints change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test,lint,demo,postgres,bench]'
	@touch $(STAMP)

install: $(STAMP)

# Starts the local Kafka (secure: mutual TLS, ACLs; KAFKA_ARGS=--plaintext for a plaintext one) and
# PostgreSQL unless XHUB_TEST_BOOTSTRAP / XHUB_TEST_POSTGRES_DSN point elsewhere (then the XHUB_KAFKA_*
# environment carries that broker's credentials), runs pytest as the broker's super user, and stops what it
# started.
test: $(STAMP)
	@set -u; started_kafka=0; started_pg=0; \
	if [ -z "$${XHUB_TEST_BOOTSTRAP:-}" ]; then \
	  $(KAFKA) status $(KAFKA_ARGS) >/dev/null 2>&1 || started_kafka=1; \
	  $(KAFKA) up $(KAFKA_ARGS) || exit 1; export XHUB_TEST_BOOTSTRAP=$$($(KAFKA) bootstrap); \
	  client_env=$$($(KAFKA) client-env $(KAFKA_ARGS)) || exit 1; eval "$$client_env"; \
	fi; \
	if [ -z "$${XHUB_TEST_POSTGRES_DSN:-}" ]; then \
	  $(PG) status >/dev/null 2>&1 || started_pg=1; \
	  if ! $(PG) up; then [ $$started_kafka = 1 ] && $(KAFKA) down $(KAFKA_ARGS); exit 1; fi; \
	  export XHUB_TEST_POSTGRES_DSN=$$($(PG) dsn); \
	fi; \
	deploy/local/browser.sh >/dev/null || exit 1; \
	deploy/local/promtool.sh >/dev/null || exit 1; \
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	[ $$started_kafka = 1 ] && $(KAFKA) down $(KAFKA_ARGS); \
	[ $$started_pg = 1 ] && $(PG) down; \
	exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check hub connectors tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# On the secure broker (KAFKA_ARGS=--plaintext for a plaintext one); the demo's setup runs as the super user,
# each party it starts with its own certificate. Stops the broker afterwards if it started it (everything
# the demo starts, it stops).
demo: $(STAMP)
	@started=0; $(KAFKA) status $(KAFKA_ARGS) >/dev/null 2>&1 || started=1; \
	$(KAFKA) up $(KAFKA_ARGS) || exit 1; \
	client_env=$$($(KAFKA) client-env $(KAFKA_ARGS)) || exit 1; eval "$$client_env"; \
	$(VENV)/bin/xhub demo --bootstrap $$($(KAFKA) bootstrap) $(DEMO_ARGS); rc=$$?; \
	[ $$started = 1 ] && $(KAFKA) down $(KAFKA_ARGS); \
	exit $$rc

# Issue 17's federation: Pudong and Xuhui district hubs -> the city hub -> the city's public credit centre,
# each level on a Kafka cluster of its own that the demo starts and stops itself (ports from 39092:
# DEMO_ARGS="--port-base N" moves them; --plaintext for clusters without TLS and ACLs).
demo-federation: $(STAMP)
	@$(VENV)/bin/xhub demo --federation $(DEMO_ARGS)

bench: $(STAMP)
	@$(KAFKA) up $(KAFKA_ARGS)
	client_env=$$($(KAFKA) client-env $(KAFKA_ARGS)) && eval "$$client_env" && XHUB_TEST_BOOTSTRAP=$$($(KAFKA) bootstrap) $(PY) -m tests.bench.run

# Broker failures on a private three-broker cluster (ports XHUB_CHAOS_PORT.., default 29110-29115), which the
# test starts and stops itself; the summary table is printed from build/chaos/summary.json. Then the
# federation's 30 s outages of the district and the city cluster (the private clusters of the federation
# tests; `make test` runs them 5 s long).
chaos: $(STAMP)
	@$(PY) -m pytest -m chaos -s -p no:cacheprovider tests/integration/test_broker_chaos.py \
	  tests/integration/test_federation_faults.py $(PYTEST_ARGS); rc=$$?; \
	[ -f build/chaos/summary.json ] && $(PY) -m tests.integration.broker_chaos build/chaos/summary.json; \
	exit $$rc

kafka-up:
	@$(KAFKA) up $(KAFKA_ARGS)

kafka-down:
	@$(KAFKA) down $(KAFKA_ARGS)
	@$(PG) down

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache

# Lumyri accounts. The two set-up commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
APP_ENV ?= development
# Processes for the tests that start no server (tests/unit, tests/api): much of their
# time is spent waiting on Postgres, locks and timeouts, so more than the cores.
TEST_WORKERS ?= 4
export HOST PORT APP_ENV

.PHONY: help run gateway cluster test test-fast migrate lint format bench bench-overhead clean
.DEFAULT_GOAL := help

## help: list the targets with what each does
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed -e 's/^## //' | awk -F': ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -e .
	touch $(STAMP)

## run: install, apply migrations, serve with gunicorn on $HOST:$PORT
run: $(STAMP) migrate
	exec $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

## gateway: nginx in front of the service on $GATEWAY_PORT (8080), configured in deploy/nginx/
gateway: $(STAMP)
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || (command -v apt-get >/dev/null && \
		[ "$$(id -u)" = 0 ] && (apt-get install -y -qq nginx >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq nginx >/dev/null 2>&1))) || \
		(echo "nginx is not installed: apt-get install nginx (as root)" && exit 1)
	exec $(BIN)/python deploy/nginx/gateway.py

## cluster: $CLUSTER_INSTANCES (3) instances from $PORT, PgBouncer, the gateway (Postgres and Redis from the environment)
cluster: $(STAMP)
	@missing=""; \
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || missing="nginx"; \
	command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || missing="$$missing pgbouncer"; \
	if [ -n "$$missing" ]; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			(apt-get install -y -qq $$missing >/dev/null 2>&1 || \
			 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $$missing >/dev/null 2>&1)) && \
			(service pgbouncer stop >/dev/null 2>&1; update-rc.d pgbouncer disable >/dev/null 2>&1; true) || \
			{ echo "could not install$$missing"; exit 1; }; \
		else echo "not installed:$$missing (apt-get install$$missing, as root)"; exit 1; fi; \
	fi
	exec $(BIN)/python deploy/cluster.py

## migrate: create or upgrade the database schema (and seed the system roles)
migrate: $(STAMP)
	$(BIN)/flask --app wsgi db upgrade

# pytest keeps the test modules it rewrites (and Python the bytecode it compiles) in
# __pycache__ between runs, even where the shell sets PYTHONDONTWRITEBYTECODE: without
# that cache, rewriting the tests is most of a run's 10 s of collection.
test test-fast: export PYTHONDONTWRITEBYTECODE =

## test: install if needed and run the whole suite (SQLite and Postgres, gunicorn, bench smoke)
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) tests/unit tests/api $(PYTEST_ARGS)
	$(BIN)/python -m pytest tests/system $(PYTEST_ARGS)

## test-fast: the tests that start no server process (tests/unit, tests/api), SQLite, fewer generated examples
test-fast: $(STAMP)
	TEST_EXAMPLES_SCALE=0.1 $(BIN)/python -m pytest -n 2 --dist worksteal -m "not postgres" tests/unit tests/api $(PYTEST_ARGS)

## lint: ruff check, ruff format check and mypy --strict over app/ and config.py, as CI runs them
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: the benchmark (not part of the tests); results in bench/results/
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -r bench/requirements.txt
	command -v wrk >/dev/null || (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		(apt-get install -y -qq wrk >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq wrk >/dev/null 2>&1))) || \
		echo "wrk not installed: the Python asyncio client will generate the load"
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## bench-overhead: the work of a sign-up and a log-in outside the hash, in one process
bench-overhead: $(STAMP)
	$(BIN)/python bench/overhead.py $(BENCH_ARGS)

## format: apply ruff's fixes and formatting
format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## clean: remove the virtualenv and the tool caches
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

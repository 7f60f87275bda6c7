# Overread: `make run` starts the app, `make test` runs the whole suite.
# Both set everything up first (virtualenv, locked dependencies, viewer bundle,
# database) and are quick when nothing changed.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PIP := $(PY) -m pip
MANAGE := $(PY) manage.py
# The CPU build of torch, pinned in the lock. It is taken from a local wheel
# folder (pip's find-links) when one has it, else from PyTorch's CPU index:
# a plain PyPI install would pull a multi-GB CUDA build.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PIN = $(shell grep -E '^torch==' requirements/dev.txt)
BUNDLE := static/dist/.built
HOST ?= 127.0.0.1
PORT ?= 8000

export PYTHONUNBUFFERED := 1
# Tools installed into the virtualenv (celery, gunicorn, dciodvfy) are found by name.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test lint bench soak setup deps bundle migrate demo lock clean format

# The local set-up serves plain HTTP on loopback with a generated secret key;
# production sets SECRET_KEY, HTTPS and the rest (docs/operations.md).
run demo: export HTTPS ?= false
run demo: export ALLOWED_HOSTS ?= 127.0.0.1,localhost
run: demo
	@echo "Overread: http://$(HOST):$(PORT)/  (Ctrl-C stops the web server and the worker)"
	@mkdir -p var/celery
	@OVERREAD_HOST=$(HOST) OVERREAD_PORT=$(PORT) $(BIN)/honcho -f Procfile start

setup: deps bundle var/secret_key

test: deps bundle
	@$(BIN)/pytest $(PYTEST_ARGS)

lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@if command -v shellcheck >/dev/null; then shellcheck -x .ci/run scripts/services.sh; \
	elif [ "$$CI" = true ]; then echo "shellcheck is missing (apt-get install shellcheck)"; exit 1; \
	else echo "shellcheck not installed: shell scripts not checked (apt-get install shellcheck)"; fi
	$(PY) scripts/check_deploy.py
	DJANGO_SETTINGS_MODULE=tests.settings $(MANAGE) makemigrations --check --dry-run

format: deps
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: deps bundle
	$(PY) -m bench $(BENCH_ARGS)

# 50 simulated users for 10 minutes on gunicorn, PostgreSQL, Redis and a Celery worker
# running inference (bench/soak.py); needs DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL.
soak: deps bundle
	$(PY) -m bench.soak --users 50 --minutes 10

deps: $(VENV)/.installed

$(VENV)/.installed: requirements/dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install -qq --upgrade pip==26.3
	@$(PIP) install -qq --no-deps --no-index '$(TORCH_PIN)' 2>/dev/null \
		|| $(PIP) install -qq --no-deps --index-url $(TORCH_INDEX) '$(TORCH_PIN)'
	@$(PIP) install -qq -r requirements/dev.txt
	@touch $@

bundle: $(BUNDLE)

$(BUNDLE): package.json package-lock.json $(wildcard viewer/frontend/*.js) scripts/build_viewer.mjs
	@test -d node_modules && test node_modules/.package-lock.json -nt package-lock.json || npm ci --no-audit --no-fund --loglevel=error
	@node scripts/build_viewer.mjs
	@touch $@

var/secret_key:
	@mkdir -p var
	@$(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@
	@chmod 600 $@

# Loads the demo data once: synthetic studies and one user per role.
demo: setup
	@$(MANAGE) migrate --noinput -v 0
	@$(MANAGE) collectstatic --noinput -v 0
	@$(MANAGE) seed_demo

lock:
	$(BIN)/pip-compile -q --no-emit-find-links --no-emit-index-url --strip-extras --allow-unsafe -o requirements/base.txt requirements/base.in
	$(BIN)/pip-compile -q --no-emit-find-links --no-emit-index-url --strip-extras --allow-unsafe -o requirements/dev.txt requirements/dev.in

clean:
	rm -rf $(VENV) node_modules static/dist var/celery .pytest_cache .mypy_cache .ruff_cache

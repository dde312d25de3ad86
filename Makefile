# Two commands set up a fresh machine: `make demo` (embedded defaults, nothing but Python)
# and `make test` (provisions real Kafka, Redis, PostgreSQL and Chromium, runs every test).

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
ENV ?=
PYTEST_ARGS ?=

export PATH := $(BIN):$(PATH)

.PHONY: demo demo-loop demo-setup run services system test lint format clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python >= 3.11 is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: install, migrate, load demo data and run every component on the embedded defaults
demo: export DJANGO_DEBUG ?= true
demo: demo-setup
	@echo "Serving http://127.0.0.1:$${WEB_PORT:-8000} (Ctrl-C stops every process)"
	$(BIN)/honcho start

LIVE_ARGS ?= --duration 28800

## demo-loop: the demo with the city, its fraud, fast labels and an analyst playing against it,
## and the learning loop's settings at minutes (config/loop.env)
demo-loop: export DJANGO_DEBUG ?= true
demo-loop: demo-setup
	@mkdir -p var
	@{ cat Procfile; echo "city: python manage.py simulate live --wait-for-app 120 $(LIVE_ARGS)"; } > var/Procfile.loop
	@echo "Serving http://127.0.0.1:$${WEB_PORT:-8000} with the city playing (Ctrl-C stops every process)"
	$(BIN)/honcho --env .env,config/loop.env --procfile var/Procfile.loop start

demo-setup: $(STAMP)
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py analyst_add analyst --password analyst
	$(BIN)/python manage.py ml_engineer_add mlengineer --password mlengineer
	$(BIN)/python manage.py features_apply
	$(BIN)/python manage.py bootstrap --if-no-champion
	$(BIN)/python manage.py bootstrap --if-no-champion --checkpoint capture

## run: run every component with the environment in $(ENV) (e.g. ENV=var/services.env)
run: $(STAMP)
	$(if $(ENV),set -a && . ./$(ENV) && set +a && )$(BIN)/python manage.py migrate --no-input
	$(if $(ENV),set -a && . ./$(ENV) && set +a && )$(BIN)/python manage.py features_apply
	$(BIN)/honcho start $(if $(ENV),--env $(ENV))

## services: run real PostgreSQL, Redis and Kafka until Ctrl-C; writes var/services.env
services: system
	$(BIN)/python -m devservices up

## system: install the Debian packages and Kafka jars the real services need
system: $(STAMP)
	$(BIN)/python -m devservices install

## test: provision the real services and run the whole suite
test: system
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## lint: ruff (lint and format check) and the import-layer contracts
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var artifacts .pytest_cache .ruff_cache

# Every target sets up what it needs: a virtualenv with the pinned packages, and Chromium
# for the browser tests.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run run-prod test worker migrate lint format chromium bytecode bench bench-import bench-list bench-webhooks bench-load bench-upload bench-narrow clean

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint constraints.txt --editable '.[dev]'
	touch $(STAMP)

# Where PYTHONDONTWRITEBYTECODE is set (some machines and containers set it), Python keeps no
# compiled modules, and each process the app starts (every command, web process and worker)
# compiled the app's ~120 modules again: 0.6 s of a core, a third of its start. Compiled
# here, they are read from __pycache__ (an edited module is compiled again at the next target).
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q src

run: $(STAMP) bytecode  ## Start the app (embedded default unless DATABASE_URL/CELERY_BROKER_URL are set)
	$(BIN)/product-importer serve --host $(HOST) --port $(PORT)

# Production mode with this machine's PostgreSQL and Redis: the database is created if missing
# and migrated, then honcho runs deploy/Procfile (gunicorn with WEB_CONCURRENCY processes and
# two Celery workers). Ctrl-C stops them all. Settings come from the environment, else .env,
# else these defaults.
# honcho ends 130 after a Ctrl-C, which make reported as "Error 130": a stop asked for is no
# failure, so the shell waits for honcho (its trap keeps it through the terminal's Ctrl-C) and
# ends 0 for it; a SIGTERM to make reaches that shell alone, which passes it on.
PROD_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/product_importer
PROD_BROKER_URL ?= redis://127.0.0.1:6379/0

run-prod: $(STAMP) bytecode  ## Production mode here: gunicorn and two Celery workers (honcho); Ctrl-C stops
	@$(if $(wildcard .env),$(BIN)/dotenv run --no-override) sh -c '\
		export DATABASE_URL="$${DATABASE_URL:-$(PROD_DATABASE_URL)}" \
			CELERY_BROKER_URL="$${CELERY_BROKER_URL:-$(PROD_BROKER_URL)}" \
			WEB_CONCURRENCY="$${WEB_CONCURRENCY:-4}" HOST="$(HOST)" \
			PATH="$(abspath $(BIN)):$$PATH" && \
		product-importer migrate --create-database || exit; \
		trap : INT; honcho start --procfile deploy/Procfile --port $(PORT) & honcho=$$!; \
		trap "kill -TERM $$honcho" TERM; \
		while wait $$honcho; code=$$?; kill -0 $$honcho 2>/dev/null; do :; done; \
		[ $$code -ne 130 ] || code=0; exit $$code'

worker: $(STAMP) bytecode  ## Start a Celery worker (production mode)
	$(BIN)/product-importer worker

migrate: $(STAMP) bytecode
	$(BIN)/product-importer migrate

# The tests run in TEST_PROCESSES pytest processes side by side (pytest-xdist), each with its
# own database, Redis database, worker and servers. A test spends most of its time waiting for
# those processes (and the Redis outage test sleeps a minute), so three of them keep a 2-core
# machine busy where two left it partly idle; four were no faster (14.6 min against 14.9, the
# cores busy throughout) and hold more of the server's connections (75 at most, of 100).
TEST_PROCESSES ?= 3

# PYTHONDONTWRITEBYTECODE is emptied for the tests: pytest keeps its rewritten test modules
# only where Python may write bytecode, and each test process collected them in 9.4 s of a
# core without, 3.6 s with.
test: $(STAMP) bytecode chromium  ## Run every test against real PostgreSQL, Redis, Celery and Chromium
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -n $(TEST_PROCESSES) --dist worksteal

chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: bench-import bench-list bench-webhooks bench-upload

bench-import: $(STAMP) bytecode  ## Import benchmark: reference vs full import, unchanged, half changed; RSS
	$(BIN)/python bench/import_bench.py

bench-list: $(STAMP) bytecode
	$(BIN)/python bench/list_bench.py

bench-webhooks: $(STAMP) bytecode
	$(BIN)/python bench/webhook_bench.py

bench-load: $(STAMP) bytecode  ## 50 people browsing and 5 editing (locust) while a 500K import runs
	$(BIN)/python bench/load_bench.py

bench-upload: $(STAMP) bytecode  ## A tus upload at 5 MB/s: import after its last byte vs R_bare
	$(BIN)/python bench/upload_bench.py

bench-narrow: $(STAMP) bytecode  ## Phrases counted narrowed and whole, by gain (after bench-list's catalog)
	$(BIN)/python bench/narrow_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache artifacts bench/data

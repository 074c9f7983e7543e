# `make demo` plays a whole delivery day in the sandbox (no account needed); `make run` starts
# Lastmile on its embedded defaults; `make test` runs lint and the tests.
# The virtual environment is created and installed on first use (and again when
# pyproject.toml changes). Set TEST_POSTGRES_URL to run the suite on PostgreSQL as well.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVICE_STAMP := $(VENV)/.installed-service

.PHONY: install demo run test lint format bench bench-routing bench-dispatch bench-known-day bench-big-day bench-bot bench-whatsapp-inbound bench-whatsapp-outbound bench-web bench-reports bench-board bench-instances clean

# The service alone (`make run`, `make demo`): its dependencies, not compiled ahead (about 50 s
# on a warm package cache); the development tools come with `make install` / `make test`.
$(SERVICE_STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Lastmile needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile --disable-pip-version-check -e .
	touch $(SERVICE_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Lastmile needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	touch $(STAMP) $(SERVICE_STAMP)

install: $(STAMP)

run: $(SERVICE_STAMP)
	$(BIN)/lastmile run

# A whole delivery day on the real service, played in the sandbox on a fast clock (see README).
demo: $(SERVICE_STAMP)
	$(BIN)/lastmile demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m bench.lifecycle

# Route quality on the shared VRP data (../shared/data/vrp; --data to point elsewhere).
bench-routing: $(STAMP)
	$(BIN)/python -m bench.routing solomon
	$(BIN)/python -m bench.routing gh200
	$(BIN)/python -m bench.routing pd

bench-dispatch: $(STAMP)
	$(BIN)/python -m bench.dispatch latency
	$(BIN)/python -m bench.dispatch day
	$(BIN)/python -m bench.odd_days
	$(BIN)/python -m bench.autopilot latency --postgres $(BENCH_POSTGRES) --skip-unreachable
	$(BIN)/python -m bench.churn
	$(BIN)/python -m bench.autopilot_day

# The plan of a known day against PyVRP (distance, duration objectives) and VROOM, re-driven
# per leg with rush hours and breaks (about 15 minutes on 2 cores).
bench-known-day: $(STAMP)
	$(BIN)/python -m bench.known_day

# A day of 5,000 stops and 200 drivers: the product's solve() beside PyVRP alone (each run in its
# own process, alternately), then the product within a 30 s budget (about 6 minutes on 2 cores).
bench-big-day: $(STAMP)
	$(BIN)/python -m bench.big_day --budget 30

# Telegram channel: live-location updates through the webhook (SQLite, then PostgreSQL at
# BENCH_POSTGRES, skipped with a message when it is unreachable) and outbox delivery under 429s.
BENCH_POSTGRES ?= postgresql://postgres@127.0.0.1:5432/postgres

bench-bot: $(STAMP)
	$(BIN)/python -m bench.bot location --postgres $(BENCH_POSTGRES) --skip-unreachable
	$(BIN)/python -m bench.bot notify

# WhatsApp webhook bodies: time to the 200, and processed per second (SQLite and PostgreSQL)
bench-whatsapp-inbound: $(STAMP)
	$(BIN)/python -m bench.whatsapp_inbound --postgres $(BENCH_POSTGRES) --skip-unreachable

# WhatsApp notifications: 1,000 to 100 people through the fake Graph API with throttling and 5xx
# injected: messages per second, nothing lost, nothing doubled (SQLite and PostgreSQL)
bench-whatsapp-outbound: $(STAMP)
	$(BIN)/python -m bench.whatsapp_outbound --postgres $(BENCH_POSTGRES) --skip-unreachable

# Tracking pages: GET /t/{token}.json throughput (aiohttp and wrk when installed) and SSE
# fan-out latency of one position to 500 open pages; SQLite, then PostgreSQL at BENCH_POSTGRES.
bench-web: $(STAMP)
	$(BIN)/python -m bench.web all --postgres $(BENCH_POSTGRES) --skip-unreachable

# The dispatcher's live board: 200 drivers, 2,000 stops in headless Chromium (Debian's chromium):
# first render and a position update on the open board; SQLite, then PostgreSQL at BENCH_POSTGRES.
bench-board: $(STAMP)
	$(BIN)/python -m bench.board --postgres $(BENCH_POSTGRES) --skip-unreachable

# Reports: metrics and the whole report (text, chart, CSV) of a day of 5,000 orders and 100
# drivers, on SQLite, then PostgreSQL at BENCH_POSTGRES (skipped when it is unreachable).
bench-reports: $(STAMP)
	$(BIN)/python -m bench.reports --postgres $(BENCH_POSTGRES) --skip-unreachable

# A busy hour on 2 instances behind HAProxy (apt-get install haproxy), one killed and restarted,
# then the throughput of 1 and 2 instances; a fresh database on BENCH_POSTGRES, Redis database 15.
# Scale it down: make bench-instances HOUR_ARGS="--drivers 30 --orders 200 --streams 200 --minutes 3"
bench-instances: $(STAMP)
	$(BIN)/python -m bench.instances_hour --postgres $(BENCH_POSTGRES) $(HOUR_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

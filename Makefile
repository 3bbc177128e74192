# Two commands do everything on a fresh machine with Python 3.11 and git:
#   make demo   — embedded Postgres, local S3, example models, the server on 127.0.0.1:8000 (PORT=…)
#   make test   — the whole test suite (what CI runs)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# the demo needs only the demo extra (Postgres and S3 on this machine), not the test tools
DEMO_STAMP = $(VENV)/.installed-demo
# make demo PORT=8001 serves elsewhere; DEMO_ARGS passes any other option of `modelplatform demo`
PORT   ?= 8000
DEMO_ARGS ?=

.PHONY: demo test test-fast lint install browser pgbouncer clean bench bench-scale

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP) $(DEMO_STAMP)

# the test extra includes the demo's: after `make install`, this has nothing to do
$(DEMO_STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $(DEMO_STAMP)

install: $(STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/modelplatform demo --port $(PORT) $(DEMO_ARGS)

# the /docs page is tested in Debian's headless chromium; installed when we are root with apt, else
# that one test is skipped with its reason
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
			|| echo "chromium could not be installed: the /docs browser test will be skipped"; \
	else echo "chromium not installed (not root or no apt): the /docs browser test will be skipped"; fi

# the platform is tested through Debian's PgBouncer (transaction pooling); installed like chromium above
# (its service is not started: the tests run their own), else those tests are skipped, or fail under CI
pgbouncer:
	@if command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null \
			&& (systemctl disable --now pgbouncer >/dev/null 2>&1 || true)) \
			|| echo "pgbouncer could not be installed: the PgBouncer tests will be skipped"; \
	else echo "pgbouncer not installed (not root or no apt): the PgBouncer tests will be skipped"; fi

test: $(STAMP) lint browser pgbouncer
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the gate before the tests: lint (ruff) of the package, its migrations, the tests and the benchmarks, and types
# (mypy) of the package; config in pyproject.toml
lint: $(STAMP)
	$(BIN)/ruff check platform migrations tests benchmarks
	$(BIN)/mypy

# the unit tier alone: every test not marked slow (no Postgres, S3 or process), in seconds (README, "Developing")
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# benchmark (a script, not a test): bare Flask vs the platform with durable audit; see docs/performance.md
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	command -v wrk >/dev/null || apt-get install -y wrk || sudo apt-get install -y wrk \
		|| echo "wrk could not be installed: benchmarks/run.py falls back to its Python load generator"
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# the audit table at 1M/5M/20M rows, partitioned vs the old layout (a script, not a test; docs/performance.md)
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/audit_scale.py $(BENCH_SCALE_ARGS)

clean:
	rm -rf $(VENV) .demo .pytest_cache

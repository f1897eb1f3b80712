# Each target creates .venv when missing; only python3 (>= 3.11) and pip are assumed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench chaos clean browser ui-screenshots

# --no-compile: byte-compiling every installed file (Ray, pandas, moto...) took about a
# minute of a clean clone's `make test`; Python compiles what the tests import, once.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m unbounded.demo

# Lint and types run beside the suite, which leaves a core idle much of the time (it waits
# on subprocesses, brokers and fsyncs); make still fails when any of the three fails.
test: $(STAMP)
	$(MAKE) --no-print-directory -j 3 lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench chaos

typecheck: $(STAMP)
	$(BIN)/mypy

# Two pytest-xdist workers, each taking whole files (module fixtures such as the Ray
# cluster start once per file): the suite mostly waits on subprocesses, brokers and fsyncs,
# so two workers on 2 cores take about 10 minutes where one took 15.
pytest: $(STAMP) browser
	$(BIN)/pytest -q -n 2 --dist loadfile

# The web UI's browser tests drive Debian's Chromium (never a downloaded browser): as root
# with apt-get it is installed when missing; otherwise those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
	  ! command -v apt-get >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium chromium-driver >/dev/null; } || \
	  echo "chromium could not be installed: the web UI's browser tests will be skipped"

# Refresh the screenshots of docs/ui/ from the browser tests.
ui-screenshots: $(STAMP) browser
	UNBOUNDED_UI_SCREENSHOTS=1 $(BIN)/pytest -q tests/streaming/test_web_ui.py

# The benchmarks' baselines: PySpark (the bench extra) and Quix Streams, which pins an
# older confluent-kafka and so gets a venv of its own (bench-data/quix-venv).
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml bench/quix-requirements.txt
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@command -v java >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
	  ! command -v apt-get >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    default-jre-headless >/dev/null; } || \
	  echo "java could not be installed: the PySpark baselines will report failed"
	$(BIN)/python -m bench.quix_env || \
	  echo "Quix Streams could not be installed: the kafka workload will report why"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench

# The chaos suite (issue 10): crashes, disk faults, damaged checkpoints; SEED=n repeats a run.
chaos: $(STAMP)
	$(BIN)/python -m chaos $(if $(SEED),--seed $(SEED))

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

"""A query imports only the libraries it uses (start-up time is an issue-15 figure).

Each test starts a fresh process (``startup_imports_job.py``) that runs a query to its
first commit and lists ``sys.modules``; a library made lazy that comes back at module
level (a regression of 20-50 ms of start-up each) fails here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

JOB = Path(__file__).with_name("startup_imports_job.py")

# What neither query below uses: optional connectors, pandas, the terminal bar (rich,
# only for availableNow/once at a terminal), Prometheus (metrics off by default), the
# SQL parser, Arrow's compute module (its import builds docstrings: 30-50 ms), the
# function families neither query calls (collection, JSON, math, string), pyarrow's
# CSV, JSON and ORC readers, task retries and speculation (local[N, F] and Ray only), the
# row-UDF worker processes and distinct-call folding (a query without a Python UDF), the
# pandas-state, join and deduplication operators, the statistics module (speculation
# only), the testing DSL (the batch loop imports ``testing.faults``) and ``http.server``
# (the UI builds its HTTP server on the first request), the crc32c package's own
# ``__init__`` (its command line's argparse and its metadata read; the checksums load its
# compiled module alone) and the session-window operator (a query without session_window).
NOT_IMPORTED = (
    "argparse", "confluent_kafka", "crc32c", "deltalake", "fastavro", "http.server", "pandas",
    "prometheus_client", "psycopg", "pyarrow.compute", "pyarrow.csv", "pyarrow.json",
    "pyarrow.orc", "ray", "rich", "rocksdict", "sqlglot", "statistics",
    "unbounded.engine.collection_functions", "unbounded.engine.distinct_calls",
    "unbounded.engine.group_state", "unbounded.engine.joins",
    "unbounded.engine.json_functions", "unbounded.engine.math_functions",
    "unbounded.engine.stateful_processor", "unbounded.engine.string_functions",
    "unbounded.engine.udf_workers", "unbounded.executors.retry",
    "unbounded.executors.speculation", "unbounded.runtime.stateful.dedup",
    "unbounded.runtime.stateful.group_state", "unbounded.runtime.stateful.join",
    "unbounded.runtime.stateful.session", "unbounded.runtime.stateful.transform_state",
    "unbounded.sources.memory", "unbounded.testing.stream",
)


def _modules(*args: str) -> set[str]:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    done = subprocess.run([sys.executable, str(JOB), *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def _unexpected(modules: set[str]) -> list[str]:
    return sorted(m for m in NOT_IMPORTED if m in modules)


def test_windowed_file_query_to_its_first_commits_imports_no_unused_library(
        tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    times = pa.array([1_767_225_600_000_000 + i * 100_000 for i in range(20)],
                     pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"event_time": times, "key": pa.array(range(20), pa.int64()),
                             "value": pa.array([1.0] * 20)}), folder / "part-0.parquet")
    out, checkpoint = tmp_path / "out", tmp_path / "ckpt"

    modules = _modules("files", str(folder), str(out), str(checkpoint))

    assert _unexpected(modules) == []
    assert "unbounded.runtime.stateful.aggregate" in modules  # the query did run
    assert (checkpoint / "commits" / "0").exists()


def test_stateless_rate_query_to_its_first_commit_imports_no_unused_library(
        tmp_path: Path) -> None:
    out, checkpoint = tmp_path / "out", tmp_path / "ckpt"

    modules = _modules("rate", str(out), str(checkpoint))

    assert _unexpected(modules) == []
    assert "unbounded.sources.rate" in modules
    assert (checkpoint / "commits" / "0").exists()


# What the API alone does not use, beyond NOT_IMPORTED: Parquet (with pyarrow.fs and its
# cloud filesystems and ssl: a file source or sink imports it when a query starts), the
# object-store client and the Kafka connectors (kafka-python and ours).
NOT_IMPORTED_BY_THE_API = (
    *NOT_IMPORTED, "fsspec", "kafka", "pyarrow.dataset", "pyarrow.fs", "pyarrow.parquet",
    "ssl", "unbounded._kafka", "unbounded.sinks.kafka", "unbounded.sources.kafka",
)


def test_importing_the_api_imports_no_library_a_query_may_not_use() -> None:
    code = ("import sys\nfrom unbounded.sql import SparkSession, functions as F\n"
            "print(' '.join(sys.modules))")
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    modules = set(done.stdout.split())

    assert sorted(m for m in NOT_IMPORTED_BY_THE_API if m in modules) == []
    assert "unbounded.sql.functions" in modules

"""Shared fixtures: a fresh session per test, and helpers to run jobs as subprocesses."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator

# Pin the process zone before anything imports unbounded (its default session zone is read
# at import) or converts a datetime: collect()/createDataFrame use the Python process's
# zone, so results would change on a machine outside UTC.
os.environ["TZ"] = "UTC"
time.tzset()

import pytest  # noqa: E402

from kafka_fixtures import kafka_bootstrap, kafka_broker_process  # noqa: F401, E402
from postgres_fixtures import postgres_db, postgres_server  # noqa: F401, E402
from s3_fixtures import s3_bucket, s3_server  # noqa: F401, E402
from unbounded.sql import SparkSession  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def spark() -> Iterator[SparkSession]:
    session = (SparkSession.builder.appName("test")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.sql.session.timeZone", "UTC").create())
    yield session
    session.stop()


@pytest.fixture
def python_env() -> dict[str, str]:
    """Environment for a subprocess that imports this checkout's package."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(ROOT, "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("UNBOUNDED_FAULT", None)
    return env


PYTHON = sys.executable

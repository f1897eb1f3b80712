"""What every opt-in Spark-oracle test module shares: the guard that skips it unless
``UNBOUNDED_SPARK_ORACLE=1`` and pyspark are there, the warnings PySpark itself raises,
and the path its Python workers import test modules from.

The oracle tests start a JVM (Java 17+) and run minutes, so CI leaves them out; run
them with ``UNBOUNDED_SPARK_ORACLE=1 pytest tests/streaming/test_spark_oracle*.py ...``
after ``pip install -e '.[oracle]'``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

__all__ = ["ORACLE_MARKS", "require_spark_oracle", "started_pyspark", "workers_import_from"]

_TESTS = os.path.dirname(os.path.abspath(__file__))
_SRC = os.path.join(os.path.dirname(_TESTS), "src")

# PySpark itself warns (pandas >= 3 support, py4j sockets closed late); not ours to fix.
ORACLE_MARKS: list[Any] = [pytest.mark.filterwarnings("ignore::FutureWarning"),
                           pytest.mark.filterwarnings("ignore::ResourceWarning"),
                           pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def require_spark_oracle() -> None:
    """Skip the calling module (at import) unless the oracle is asked for and there."""
    if os.environ.get("UNBOUNDED_SPARK_ORACLE") != "1":
        pytest.skip("Spark oracle tests are opt-in: set UNBOUNDED_SPARK_ORACLE=1 (needs "
                    "pyspark and Java 17+)", allow_module_level=True)
    pytest.importorskip("pyspark", reason="UNBOUNDED_SPARK_ORACLE=1 but pyspark is not "
                                          "installed: pip install -e '.[oracle]'")


def workers_import_from(*folders: str) -> None:
    """Put ``folders``, tests/ (this module) and src/ on the path of the Python workers
    of the sessions ``started_pyspark`` starts from now on: they unpickle a test
    module's functions and classes by reference, so they import that module, and it
    imports this one."""
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (*folders, _TESTS, _SRC, os.environ.get("PYTHONPATH")) if p)


@contextlib.contextmanager
def started_pyspark(app: str, **conf: str) -> Iterator[Any]:
    """A local[1] PySpark session with ``conf`` (keys with dots: pass a dict with **),
    no UI and quiet logs, stopped at the end."""
    from pyspark.sql import SparkSession

    builder = (SparkSession.builder.master("local[1]").appName(app)
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false"))
    # The JVM, and so its Python workers' environment, may come from an earlier module's
    # session: the path goes to this context's workers through its own conf.
    if os.environ.get("PYTHONPATH"):
        builder = builder.config("spark.executorEnv.PYTHONPATH", os.environ["PYTHONPATH"])
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()

"""Start-up pays only for what a query uses (issue 15): importing the PySpark-shaped API
and creating a session load none of the modules that only some queries need.

Checked in a fresh interpreter, since this test process has imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

# Each is loaded when a query uses it: a join, a deduplication, applyInPandasWithState,
# the testing DSL, the UI's HTTP server (built on the first request), Prometheus metrics,
# SQL text, pandas, Kafka, Ray, fsspec.
LOADED_ON_USE = [
    "unbounded.runtime.stateful.join",
    "unbounded.runtime.stateful.dedup",
    "unbounded.engine.group_state",
    "unbounded.engine.stateful_processor",
    "unbounded.testing.stream",
    "unbounded.sources.memory",
    "http.server",
    "unbounded.observe.metrics",
    "prometheus_client",
    "unbounded.sql.sql_parser",
    "pandas",
    "unbounded.sources.kafka",
    "unbounded.executors.ray",
    "fsspec",
]

_PROBE = """
import json, sys, time
from unbounded.sql import SparkSession, functions as F
loaded_after_import = sorted(m for m in sys.argv[1:] if m in sys.modules)
spark = SparkSession.builder.appName("startup").config("spark.ui.port", "0").getOrCreate()
time.sleep(0.2)  # what the UI's threads would import, they have had time to
loaded_by_session = sorted(m for m in sys.argv[1:] if m in sys.modules)
spark.stop()
print(json.dumps([loaded_after_import, loaded_by_session]))
"""


def _loaded(modules: list[str]) -> list[list[str]]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *modules], capture_output=True,
                          text=True, check=True, timeout=300)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_importing_the_api_and_starting_a_session_load_no_module_a_query_may_not_use():
    assert _loaded(LOADED_ON_USE) == [[], []]


_GC_PROBE = """
import gc, json, sys
loading = []  # collections that ran while a module unbounded.sql imports was loading

def inside_a_load():
    frame, names = sys._getframe(2), []
    while frame is not None:
        if frame.f_code.co_filename.endswith("unbounded/sql/__init__.py"):
            return "_find_and_load" in names
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return False

gc.callbacks.append(lambda phase, info: loading.append(1)
                    if phase == "start" and inside_a_load() else None)
if sys.argv[1] == "off":
    gc.disable()
from unbounded.sql import SparkSession, functions as F
print(json.dumps([len(loading), gc.isenabled()]))
"""


def _import_with_collector(state: str) -> list[object]:
    done = subprocess.run([sys.executable, "-c", _GC_PROBE, state], capture_output=True,
                          text=True, check=True, timeout=300)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_api_loads_with_the_collector_paused_and_restores_it():
    # unpaused, loading Polars, pyarrow and the API runs about 150 collections
    assert _import_with_collector("on") == [0, True]
    assert _import_with_collector("off") == [0, False]

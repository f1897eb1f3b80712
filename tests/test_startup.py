"""Loading the PySpark-shaped API pauses the garbage collector, leaves what it loaded in
the oldest generation unscanned, and shortens OpenBLAS's spin (start-up is an issue-15
figure); what a query imports is pinned by ``tests/streaming/test_startup_imports.py``.

Checked in a fresh interpreter, since this test process has imported everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

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


_SCAN_PROBE = """
import gc, json
scanned = []  # objects in the generation each collection scans, as it starts
gc.callbacks.append(lambda phase, info: scanned.append(len(gc.get_objects(info["generation"])))
                    if phase == "start" else None)
from unbounded.sql import SparkSession, functions as F
garbage = [[] for _ in range(5000)]  # enough allocations for the next collections to run
print(json.dumps(scanned))
"""


def test_the_objects_the_api_loads_are_not_scanned_by_the_next_young_collection():
    done = subprocess.run([sys.executable, "-c", _SCAN_PROBE], capture_output=True,
                          text=True, check=True, timeout=300)
    scanned = json.loads(done.stdout)
    # the young collections after the import ran, and none scanned its ~100k objects
    assert scanned
    assert max(scanned) < 20_000


_BLAS_PROBE = """
import json, os, sys
if sys.argv[1] == "numpy first":
    import numpy
from unbounded.sql import SparkSession
import numpy
print(json.dumps(os.environ.get("OPENBLAS_THREAD_TIMEOUT")))
"""


def _openblas_timeout(case: str, env: dict[str, str]) -> object:
    done = subprocess.run([sys.executable, "-c", _BLAS_PROBE, case], capture_output=True,
                          text=True, check=True, timeout=300, env=env)
    return json.loads(done.stdout)


def test_loading_the_api_shortens_openblas_spin_unless_set_or_numpy_came_first():
    base = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    assert _openblas_timeout("api first", base) == "20"
    assert _openblas_timeout("api first", {**base, "OPENBLAS_THREAD_TIMEOUT": "28"}) == "28"
    assert _openblas_timeout("numpy first", base) is None

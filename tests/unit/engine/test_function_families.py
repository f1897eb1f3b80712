"""Function families load on the first name the core table lacks (start-up, issue 15).

Checked in fresh interpreters: this test process may have loaded every family already.
"""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json, sys
from unbounded.sql import SparkSession, functions as F

families = ("collection", "json", "math", "string")
def loaded():
    return sorted(f for f in families if f"unbounded.engine.{f}_functions" in sys.modules)

spark = SparkSession.builder.getOrCreate()
try:
    before = loaded()
    df = spark.createDataFrame([("ab", 8.0)], "s STRING, x DOUBLE")
    row = df.select(F.initcap("s").alias("u"), F.cbrt("x").alias("r")).collect()[0]
    print(json.dumps([before, loaded(), row["u"], row["r"]]))
finally:
    spark.stop()
"""

_TABLE_PROBE = """
import json
from unbounded.engine.functions import FUNCTIONS, function_table
print(json.dumps([len(FUNCTIONS), len(function_table()), "upper" in function_table()]))
"""


def _run(probe: str) -> list[object]:
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=300)
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_a_family_function_loads_its_family_on_first_use_and_compiles():
    before, after, capitalised, root = _run(_PROBE)

    assert before == []
    assert after == ["collection", "json", "math", "string"]
    assert (capitalised, root) == ("Ab", 2.0)


def test_the_function_table_holds_every_family():
    core, full, has_upper = _run(_TABLE_PROBE)

    assert full > core
    assert has_upper

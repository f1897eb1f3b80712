"""Opt-in: run the generated cases on PySpark and unbounded side by side, and record
PySpark's answers as the fixtures ``test_replay.py`` replays without a JVM.

``UNBOUNDED_SPARK_ORACLE=1 pytest tests/differential/test_record_against_pyspark.py``
compares live; with ``UNBOUNDED_DIFFERENTIAL_RECORD=1`` it also rewrites
tests/fixtures/differential/{batch,streaming}.json. PySpark runs with Spark 4's defaults
(ANSI on unless a case's conf turns it off), one partition, UTC.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from differential.accepted import FIXTURES, accepted_differences
from differential.harness import Engine, generate_case, run_case
from spark_oracle import ORACLE_MARKS, require_spark_oracle, workers_import_from

require_spark_oracle()

pytestmark = [*ORACLE_MARKS, pytest.mark.timeout(3600)]

CASES = {"batch": range(1, 301), "streaming": range(1001, 1031)}


@pytest.fixture(scope="module")
def pyspark_engine() -> Iterator[Engine]:
    from pyspark.sql import SparkSession, Window
    from pyspark.sql import functions as F

    # PySpark's Python workers run the UDFs: this interpreter (pyarrow, pandas) and
    # tests/differential on their path.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    workers_import_from()
    session = (SparkSession.builder.master("local[1]").appName("differential")
               .config("spark.sql.shuffle.partitions", "1")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    session.sparkContext.setLogLevel("OFF")
    yield Engine(session, F, Window)
    session.stop()


def _ours() -> Engine:
    from unbounded.sql import SparkSession, Window
    from unbounded.sql import functions as F

    return Engine(SparkSession.builder.appName("differential").config(
        "spark.sql.shuffle.partitions", "1").create(), F, Window)


def _answers(engine: Engine, mode: str) -> list[dict[str, Any]]:
    cases = []
    for seed in CASES[mode]:
        case = generate_case(seed, mode)
        with tempfile.TemporaryDirectory() as work:
            case["expected"] = run_case(engine, case, work)
        cases.append(case)
    return cases


@pytest.mark.parametrize("mode", sorted(CASES))
def test_unbounded_answers_as_pyspark_on_generated_cases(pyspark_engine, mode):
    recorded = _answers(pyspark_engine, mode)
    if os.environ.get("UNBOUNDED_DIFFERENTIAL_RECORD") == "1":
        import pyspark

        with open(os.path.join(FIXTURES, f"{mode}.json"), "w") as out:
            json.dump({"pyspark": pyspark.__version__, "generator":
                       "tests/differential/harness.py", "cases": recorded}, out, indent=None)
            out.write("\n")
    ours = _ours()
    differing = []
    for case in recorded:
        with tempfile.TemporaryDirectory() as work:
            got = run_case(ours, case, work)
        if got != case["expected"]:
            differing.append(case["id"])
    ours.spark.stop()
    unexplained = [i for i in differing if i not in accepted_differences()]
    assert not unexplained, f"{mode}: differ from PySpark and not in ACCEPTED.md: {unexplained}"

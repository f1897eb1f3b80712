"""Replays the generated differential cases against PySpark 4.3's recorded answers, row
for row, without a JVM (recorded by ``test_record_against_pyspark.py``). A case listed in
tests/fixtures/differential/ACCEPTED.md is a strict xfail with the reason given there."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from differential.accepted import FIXTURES, accepted_differences
from differential.harness import Engine, run_case
from unbounded.sql import SparkSession, Window
from unbounded.sql import functions as F


def _load(mode: str) -> list[dict[str, Any]]:
    path = os.path.join(FIXTURES, f"{mode}.json")
    with open(path, encoding="utf-8") as text:
        cases: list[dict[str, Any]] = json.load(text)["cases"]
    return cases


def _params(mode: str) -> list[Any]:
    accepted = accepted_differences()
    return [pytest.param(c, id=c["id"], marks=pytest.mark.xfail(
        reason=accepted[c["id"]], strict=True)) if c["id"] in accepted
        else pytest.param(c, id=c["id"]) for c in _load(mode)]


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    session = SparkSession.builder.appName("differential").config(
        "spark.sql.shuffle.partitions", "1").config("spark.ui.enabled", "false").create()
    yield Engine(session, F, Window)
    session.stop()


def test_the_fixtures_hold_hundreds_of_cases_of_both_modes():
    batch, streaming = _load("batch"), _load("streaming")
    assert len(batch) >= 250 and len(streaming) >= 20
    kinds = {op["op"] for c in batch for op in c["ops"]}
    assert {"selectExpr", "filter", "udf", "join", "agg", "window", "dropDuplicates"} <= kinds


@pytest.mark.parametrize("case", _params("batch"))
def test_batch_case_answers_as_pyspark(engine, case, tmp_path):
    assert run_case(engine, case, str(tmp_path)) == case["expected"]


@pytest.mark.parametrize("case", _params("streaming"))
def test_streaming_case_answers_as_pyspark(engine, case, tmp_path):
    assert run_case(engine, case, str(tmp_path)) == case["expected"]

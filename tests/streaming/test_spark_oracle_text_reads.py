"""Apache Spark as the oracle for reading text without a pattern: CAST of strings to
TIMESTAMP, DATE and TIMESTAMP_NTZ (each row in its own shape) and ``from_json`` in
PERMISSIVE mode (values Spark's parser refuses are NULL; a number read into a string is
Spark's text of it). Each column mixes shapes, so a reader that infers one format per
column, or decodes leniently, disagrees.

Opt-in, because it starts a JVM: ``UNBOUNDED_SPARK_ORACLE=1 pytest
tests/streaming/test_spark_oracle_text_reads.py`` with ``pyspark`` installed
(``pip install -e '.[oracle]'``; Java 17+).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from spark_oracle import ORACLE_MARKS, require_spark_oracle, started_pyspark
from unbounded.sql import SparkSession

require_spark_oracle()

pytestmark = [*ORACLE_MARKS]

TEXTS = [
    "2026-03-08 10:00:00", "2026-03-08T10:00:00.123+01:00", "2026-03-08", "2026-3-8 1:2:3",
    " 2026-03-08 ", "2026-03", "2026", "2026-03-08T10:00", "2026-03-08 10", "2026-03-08T",
    "2026-03-08 10:00Z", "2026-03-08 10:00:00Z", "2026-03-08 10:00:00 UTC",
    "2026-03-08 10:00:00 GMT+1", "2026-03-08 10:00:00+1:30", "2026-03-08 10:00:00+0130",
    "2026-03-08 10:00:00 Europe/Paris", "2026-03-08 10:00:00 europe/paris",
    "2026-03-08 10:00:00 PST", "2026-03-08 10:00:00.123456789", "2026-03-08 10:00:00.",
    "2026-02-30", "2026-13-01", "2026-03-08 24:00:00", "+2026-03-08", "12026-03-08",
    "2026-03-08  10:00:00", "2026-03-08junk", "2026-03-08 junk", "2026 junk", "abc", "",
    "2024-03-10 02:30:00", "2024-11-03 01:30:00", "2024-03-10 02:30:00 America/Los_Angeles",
    "2026-03-08 10:00:00 +01:00", "2026-03-08 10:00:00+19:00", None,
]
CASTS = ["unix_micros(CAST(t AS TIMESTAMP))", "CAST(CAST(t AS DATE) AS STRING)",
         "CAST(CAST(t AS TIMESTAMP_NTZ) AS STRING)"]

JSON = [
    ("a INT, b STRING", ['{"a": 1.5, "b": "x"}', '{"a": true, "b": 1e2}', '{"a": 7, "b": 1e20}',
                         '{"a": 3000000000, "b": {"x": 1.50}}', '{"a": 2, "b": [1, 2]}',
                         '{"a": "7"}', "", None, '{"a": 1} x']),
    ("a TINYINT, c SMALLINT", ['{"a": 200, "c": 1}', '{"a": 1, "c": 40000}']),
    ("a DOUBLE", ['{"a": true}', '{"a": "1.5"}', '{"a": 1}', '{"a": "NaN"}']),
    ("arr ARRAY<INT>", ['{"arr": 1}', '{"arr": [1.5, 2]}', '{"arr": [true]}', '{"arr": [1]}']),
    ("s STRUCT<a: INT>, n INT", ['{"s": {"a": 1.5}, "n": 1}', '{"s": 1, "n": 1.5}']),
    ("ARRAY<STRUCT<a: INT>>", ['{"a": 1}', '[{"a": 1.5}, {"a": 2}]', '[{"a": 1}, 2]']),
    ("ARRAY<INT>", ["[1.5, 2]", "[1, 2]", "1"]),
]


@pytest.fixture(scope="module")
def pyspark_session() -> Iterator[Any]:
    with started_pyspark("unbounded-oracle-text", **{
            "spark.sql.shuffle.partitions": "1",
            "spark.sql.ansi.enabled": "false",
    }) as session:
        yield session


@pytest.fixture(scope="module")
def ours() -> Iterator[SparkSession]:
    session = SparkSession.builder.appName("oracle-text").config(
        "spark.sql.ansi.enabled", "false").create()
    yield session
    session.stop()


def _plain(value: Any) -> Any:
    if hasattr(value, "asDict"):
        return {k: _plain(v) for k, v in value.asDict(recursive=False).items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def _column(session: Any, texts: list[str | None], expression: str) -> list[Any]:
    frame = session.createDataFrame([(i, t) for i, t in enumerate(texts)], "i INT, t STRING")
    rows = frame.selectExpr("i", f"{expression} AS v").collect()
    return [_plain(r["v"]) for r in sorted(rows, key=lambda r: r["i"])]


@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles"])
@pytest.mark.parametrize("expression", CASTS)
def test_cast_of_mixed_shapes_matches_spark(pyspark_session, ours, zone, expression):
    for session in (pyspark_session, ours):
        session.conf.set("spark.sql.session.timeZone", zone)
    want = _column(pyspark_session, TEXTS, expression)
    got = _column(ours, TEXTS, expression)
    differing = {t: (g, w) for t, g, w in zip(TEXTS, got, want, strict=True) if g != w}
    assert not differing, f"{expression}: text -> (unbounded, spark): {differing}"


@pytest.mark.parametrize(("schema", "texts"), JSON, ids=[j[0] for j in JSON])
def test_from_json_permissive_matches_spark(pyspark_session, ours, schema, texts):
    expression = f"from_json(t, '{schema}')"
    for batch in [texts, *([t] for t in texts)]:  # together, and each row alone
        want = _column(pyspark_session, batch, expression)
        got = _column(ours, batch, expression)
        assert got == want, f"{schema}: {batch}"
